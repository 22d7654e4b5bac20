# leaderd: sidecar electing a leader among 3 "example" allocations
# Rendered by `leaderd jobspec -mode sidecar`; edit freely.
#
# The app runs in every allocation; leaderd runs beside it and tells who leads:
# GET /v1/leader on the status port (200 on the leader, 503 elsewhere) and the
# Consul tag leader/follower on service "example".
#
# Consul: leaderd registers "example" with tag leader or follower, so
# leader.example.service.consul resolves to the leader; Nomad registers
# "example-leader", healthy on the leader only.
job "example" {
  type        = "service"
  datacenters = ["*"]

  # One allocation at a time, so the others keep a leader (or take over in
  # one round trip) while one is replaced.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "example" {
    count = 3

    network {
      port "status" {}
      port "app" {
        to = 8080
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    # Healthy on the leader only: the check asks leaderd's /v1/leader.
    service {
      name     = "example-leader"
      provider = "consul"
      port     = "app"

      check {
        name      = "leader"
        type      = "http"
        port      = "status"
        path      = "/v1/leader"
        interval  = "5s"
        timeout   = "2s"
        on_update = "ignore"
      }
    }

    # leaderd starts first (prestart sidecar) and outlives the app's restarts.
    # SIGTERM, then kill_timeout for releasing the lock and deregistering.
    task "leaderd" {
      driver = "exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "15s"

      config {
        command = "/usr/local/bin/leaderd"
        args    = [
          "run",
          "-service",
          "example",
          "-listen",
          "0.0.0.0:${NOMAD_PORT_status}",
          "-address",
          "${NOMAD_HOST_ADDR_status}",
          "-publish",
          "consul-tags",
        ]
      }

      env {
        CONSUL_HTTP_ADDR   = "${attr.unique.network.ip-address}:8500"
        LEADERD_LOG_FORMAT = "json"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }

    # The app, running in every allocation.
    task "app" {
      driver = "docker"

      kill_signal = "SIGTERM"

      config {
        image = "ghcr.io/example/app:1.0"
        ports = ["app"]
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}

