# leaderd: "example" runs on the leader only (leader task, 3 candidates)
# Rendered by `leaderd jobspec -mode wrap`; edit freely.
#
# leaderd wraps the app: every allocation campaigns, and only the leader runs
# "/usr/local/bin/my-app". On a lost lease or a stop, leaderd stops the app first and
# releases the lock after, so two copies never run at once.
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

    # SIGTERM, then kill_timeout before SIGKILL: leaderd stops the app (within
    # its -kill-timeout, 2s by default), releases the lock and deregisters.
    task "leaderd" {
      driver = "exec"

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
          "--",
          "/usr/local/bin/my-app",
          "--listen",
          "0.0.0.0:${NOMAD_PORT_app}",
        ]
      }

      env {
        CONSUL_HTTP_ADDR   = "${attr.unique.network.ip-address}:8500"
        LEADERD_LOG_FORMAT = "json"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}

