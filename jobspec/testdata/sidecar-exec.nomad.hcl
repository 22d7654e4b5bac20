# leaderd: sidecar electing a leader among 3 "cron" allocations
# Rendered by `leaderd jobspec -mode sidecar`; edit freely.
#
# The app runs in every allocation; leaderd runs beside it and tells who leads:
# GET /v1/leader on the status port (200 on the leader, 503 elsewhere) and the
# Consul tag leader/follower on service "cron".
#
# Consul: leaderd registers "cron" with tag leader or follower, so
# leader.cron.service.consul resolves to the leader; Nomad registers
# "cron-leader", healthy on the leader only.
job "cron" {
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

  group "cron" {
    count = 3

    network {
      port "status" {}
      port "app" {}
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    # Healthy on the leader only: the check asks leaderd's /v1/leader.
    service {
      name     = "cron-leader"
      provider = "consul"
      port     = "app"
      tags     = ["ops"]

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
          "cron",
          "-listen",
          "0.0.0.0:${NOMAD_PORT_status}",
          "-address",
          "${NOMAD_HOST_ADDR_status}",
          "-publish",
          "consul-tags",
          "-tags",
          "ops",
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
      driver = "exec"

      kill_signal = "SIGTERM"

      config {
        command = "/usr/bin/cron-runner"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}

