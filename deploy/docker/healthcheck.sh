#!/bin/bash
# Container health check for portcullis: GET /healthz on the admin listener.
#
# The runtime image (debian:12-slim) has no curl or wget, and installing one
# only for this would add a network client to every container. bash is part
# of every Debian image, and its /dev/tcp redirection is all a liveness check
# needs. Exit 0 when the answer's status is 200, 1 otherwise.
#
# PORTCULLIS_HEALTH_ADDR is host:port of `admin_listen` as seen from inside
# the container (default 127.0.0.1:9901; IPv4 or a host name).
set -u
addr="${PORTCULLIS_HEALTH_ADDR:-127.0.0.1:9901}"
host="${addr%:*}"
port="${addr##*:}"

{ exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$addr" >&3 || exit 1
# Status line: HTTP/1.1 200 OK
IFS=' ' read -r -t 3 _version status _reason <&3 || exit 1
exec 3<&-
[ "$status" = "200" ]
