// Package nomad connects leaderd to the place it runs: it reads the candidate's
// identity from a Nomad task's environment (or falls back to VM defaults), and
// publishes leader status to the world through Publishers that reconcile
// toward the latest Status without ever blocking the election:
//
//   - ConsulTagsPublisher registers this instance in the local Consul agent
//     with a "leader" or "follower" tag, so ?tag=leader catalog queries and
//     leader.<service>.service.consul resolve to the leader.
//   - VariablesPublisher writes the leader record to the Nomad Variable
//     nomad/jobs/<job>/<group>, which a jobspec template turns into a tag on a
//     Nomad-native service (Nomad's HTTP API cannot change such tags).
//
// NewPublishers builds them by name (leaderd run's -publish values).
//
// The package knows nothing about package elect: main maps election events to
// Status values and hands them to Publish.
package nomad
