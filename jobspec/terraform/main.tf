# leaderd's leader-task job (jobspec/leader-task.nomad.hcl) deployed with
# Terraform. The job file is a Terraform template: Terraform fills ${service},
# ${instances}, ${datacenters} and ${command}, while Nomad's run-time
# variables are written $${NOMAD_PORT_status} there, which Terraform turns
# into ${NOMAD_PORT_status} for Nomad to interpolate on the client.
#
# The template is generated: go test ./jobspec -update rewrites it from
# leaderd's renderer, and the tests check its escaping.

terraform {
  required_providers {
    nomad = {
      source  = "hashicorp/nomad"
      version = ">= 2.0.0"
    }
  }
}

# Address and token come from NOMAD_ADDR and NOMAD_TOKEN.
provider "nomad" {}

variable "service" {
  type        = string
  description = "leaderd -service: the Consul service, and the Nomad job and group name."
  default     = "example"
}

variable "instances" {
  type        = number
  description = "Candidates (allocations); one of them runs the app."
  default     = 3
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "command" {
  type        = string
  description = "The app leaderd runs on the leader only (it must exist on the Nomad clients)."
  default     = "/usr/local/bin/my-app"
}

resource "nomad_job" "leaderd" {
  jobspec = templatefile("${path.module}/leader-task.nomad.hcl.tftpl", {
    service     = var.service
    instances   = var.instances
    datacenters = var.datacenters
    command     = var.command
  })

  # Wait for the rolling deployment (one allocation at a time).
  detach = false
}

# The same job in JSON, as jobspec.RenderJSON (`leaderd jobspec`) prints it,
# needs no escaping at all:
#
# resource "nomad_job" "leaderd_json" {
#   jobspec = file("${path.module}/example.json")
#   json    = true
# }
