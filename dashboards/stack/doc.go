// Package stack holds the static checks of the docker-compose stack
// (docker-compose.yml and deploy/ at the repository root). There is no
// Docker engine on the development and CI machines, so the stack is checked
// offline: the compose file parses (docker-compose config -q), the Prometheus
// configuration loads (promtool check config), the collector and Jaeger
// configurations validate (jaeger validate), every mounted path exists, and
// ports, hostnames, datasource uids and provisioning paths agree across the
// files.
//
// Checks that need an installed tool skip when it is missing, unless
// TASKSCOPE_STACK_TOOLS=require (as `make test-stack` sets, after `make
// tools`). Tools are found through $PROMTOOL, $JAEGER and $DOCKER_COMPOSE,
// then the repository's .cache/bin, then $PATH.
package stack
