# Lets the tasks of job "example", group "example" write their leader record (leaderd
# -publish nomad-vars). Reads are already allowed by Nomad's implicit
# workload policy; write is not. Apply with:
#   nomad acl policy apply -namespace default -job example -group example leaderd-vars leaderd-vars.policy.hcl
namespace "default" {
  variables {
    path "nomad/jobs/example/example" {
      capabilities = ["write", "read"]
    }
  }
}
