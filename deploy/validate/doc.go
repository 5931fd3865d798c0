// Package validate checks the deployment files against the tools and the
// code that consume them, with no Docker engine and no cluster:
//
//   - docker-compose.yml is loaded by compose-go (the loader and schema of
//     docker compose itself), and checked for healthchecks on every service,
//     scalable workers, the NATS cluster and names that exist in
//     contracts/config;
//   - deploy/k8s: the kustomize overlays are built in-process (krusty), every
//     object is decoded strictly into the k8s.io/api types, the KEDA
//     ScaledObject is validated against KEDA's own CRD schema and scaler
//     metadata and its stream and consumer against contracts, probes and
//     ports against what the binaries serve, and the ConfigMap's config.yaml
//     with contracts/config;
//   - deploy/k8s/nats-values.yaml renders the same NATS users and permissions
//     as deploy/nats/toolbus.conf (loaded by nats-server);
//   - deploy/Dockerfile's build stage is replayed (its COPY and RUN lines)
//     and both binaries come out static, stripped, and able to run their
//     healthcheck command.
//
// It is a module of its own (go.mod here) so that these tools stay out of
// the toolbus module; scripts/test.sh runs it after the main tests.
package validate
