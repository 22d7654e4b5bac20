# leaderd: "example" with Nomad-native leader/follower tags (3 allocations)
# Rendered by `leaderd jobspec -mode native`; edit freely.
#
# Nomad-native service discovery: leaderd writes the leader record to the
# Nomad Variable nomad/jobs/example/example, and the "role" task turns it into
# a leader/follower tag on the provider = "nomad" service "example".
# Before running it, let the group write that variable (see
# leaderd-vars.policy.hcl):
#   nomad acl policy apply -namespace default -job example -group example leaderd-vars leaderd-vars.policy.hcl
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

    # leaderd starts first (prestart sidecar) and outlives the app's restarts.
    # SIGTERM, then kill_timeout for releasing the lock and deregistering.
    task "leaderd" {
      driver = "exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      # NOMAD_TOKEN (workload identity) for -publish nomad-vars, which talks
      # to Nomad over the Task API socket: NOMAD_UNIX_ADDR on Nomad 1.10.3+,
      # $NOMAD_SECRETS_DIR/api.sock on 1.5.0-1.10.2 (leaderd finds either).
      identity {
        env = true
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
          "nomad-vars",
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
        command = "/usr/local/bin/my-app"
        args    = ["--listen", "0.0.0.0:${NOMAD_PORT_app}"]
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }

    # Re-rendered when the leader record changes; the restart re-registers the
    # service with the new tag. Only this tiny task restarts: it idles in a
    # POSIX sh loop (`sleep infinity` is GNU-only) that exits at once on
    # SIGTERM.
    task "role" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "trap 'kill $!; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
      }

      template {
        destination = "local/role.env"
        env         = true
        change_mode = "restart"
        splay       = "1s"
        data        = <<-EOT
          {{- $role := "follower" -}}
          {{- if nomadVarExists "nomad/jobs/example/example" -}}
          {{- with nomadVar "nomad/jobs/example/example" -}}
          {{- if eq .leader_id.Value (env "NOMAD_ALLOC_ID") }}{{ $role = "leader" }}{{ end -}}
          {{- end -}}
          {{- end }}
          LEADERD_ROLE={{ $role }}
        EOT
      }

      service {
        name     = "example"
        provider = "nomad"
        port     = "app"
        tags     = ["${LEADERD_ROLE}"]

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

      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}

