#!/bin/sh
# ryuk-standin: a minimal stand-in for testcontainers' reaper (the testcontainers/ryuk image),
# made of busybox and the docker CLI, because no internet registry is reachable here.
#
# The protocol, as Ryuk speaks it: a client connects to port 8080 and sends lines of filters in
# URL query form, e.g. `label=org.testcontainers.session-id=<id>` (terms joined by `&` must all
# match); each non-empty line is answered `ACK`. The client keeps the connection open while its
# tests run. Once no client has been connected for RYUK_RECONNECTION_TIMEOUT (default 10s), or
# nobody connected within RYUK_CONNECTION_TIMEOUT (60s), or SIGTERM/SIGINT arrived with no client
# connected (with clients: after RYUK_SHUTDOWN_TIMEOUT, 10m), every container (with its anonymous
# volumes), network, volume and image matching any of the filter lines is removed through
# /var/run/docker.sock, and the stand-in exits; testcontainers runs it with auto_remove, so its
# container then goes too. Durations take Go's spelling (`10s`, `500ms`, `1m30s`).
#
# Run without arguments it is the server (the container's PID 1); busybox `nc -ll -e` runs it
# again as `ryuk-standin.sh handle` once per connection, with the connection on stdin/stdout.

set -u

SELF=$0
PORT=${RYUK_PORT:-8080}
# Not Ryuk's: where things are, overridable for the unit test that runs this on the host.
DOCKER=${RYUK_STANDIN_DOCKER:-/usr/local/bin/docker}
HANDLER_SHELL=${RYUK_STANDIN_SHELL:-/bin/sh}
STATE=${RYUK_STANDIN_STATE:-/tmp/ryuk-standin}
CLIENTS=$STATE/clients    # one file per connected client, named after its handler's pid
FILTERS=$STATE/filters    # one line per filter message received (all connections)
LEFT=$STATE/disconnected  # touched by a handler when its client goes: restarts the wait
RYUK_LABEL=org.testcontainers.ryuk

log() {
    echo "ryuk-standin: $*" >&3
}

# Go duration ($1) -> tenths of a second, rounded up; $2 when it does not parse.
ticks() {
    printf '%s\n' "$1" | awk -v dflt="$2" '
        BEGIN { mult["ns"] = 1e-9; mult["us"] = 1e-6; mult["ms"] = 1e-3
                mult["s"] = 1; mult["m"] = 60; mult["h"] = 3600 }
        {
            s = $0; total = 0
            if (s == "0") { print 0; exit }
            if (s == "") { print dflt; exit }
            while (s != "") {
                if (!match(s, /^([0-9]+(\.[0-9]*)?|\.[0-9]+)/)) { print dflt; exit }
                num = substr(s, 1, RLENGTH) + 0; s = substr(s, RLENGTH + 1)
                if (!match(s, /^(ns|us|ms|s|m|h)/)) { print dflt; exit }
                unit = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
                total += num * mult[unit]
            }
            t = int(total * 10); if (t < total * 10) t++
            print t
        }'
}

# %XX and + of a URL query term, decoded (the messages are url.ParseQuery input).
urldecode() {
    printf '%b' "$(printf '%s' "$1" | sed 's/+/ /g; s/\\/\\\\/g; s/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')"
}

listening() {
    netstat -ltn 2>/dev/null | grep -q "[:.]$PORT[[:space:]]"
}

count_clients() {
    set -- "$CLIENTS"/*
    if [ -e "$1" ]; then echo $#; else echo 0; fi
}

# Remove what one filter message matches; prints "containers networks volumes images".
prune_message() {
    msg=$1
    set --
    old_ifs=$IFS
    IFS='&'
    set -f
    for term in $msg; do
        [ -n "$term" ] || continue
        case $term in
            *=*) set -- "$@" --filter "$(urldecode "$term")" ;;
            *) log "ignoring filter term without '=': $term" ;;
        esac
    done
    set +f
    IFS=$old_ifs
    if [ $# -eq 0 ]; then
        echo "0 0 0 0"
        return
    fi
    log "deleting $*"

    # Containers, but never a reaper (Ryuk's own rule).
    ids=$("$DOCKER" ps -a --no-trunc --format "{{.ID}} {{.Label \"$RYUK_LABEL\"}}" "$@" \
        | awk '$2 != "true" { print $1 }')
    nc_=0
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086  # one id per word
        nc_=$("$DOCKER" rm -f -v $ids | grep -c .)
    fi

    nn=$(remove_retrying "network" "$DOCKER network ls -q --no-trunc" "$DOCKER network rm" "$@")
    nv=$(remove_retrying "volume" "$DOCKER volume ls -q" "$DOCKER volume rm -f" "$@")
    ni=$(remove_retrying "image" "$DOCKER image ls -q --no-trunc" "$DOCKER image rm" "$@")
    echo "$nc_ $nn $nv $ni"
}

# remove_retrying KIND LIST_CMD REMOVE_CMD FILTER_ARGS...: remove what LIST_CMD lists, retrying
# (a network can stay busy for a moment after its containers go); prints how many went.
remove_retrying() {
    kind=$1 list=$2 remove=$3
    shift 3
    removed=0
    attempt=1
    retries=${RYUK_REMOVE_RETRIES:-10}
    while :; do
        # shellcheck disable=SC2086  # the commands are word lists
        items=$($list "$@" | sort -u)
        [ -n "$items" ] || break
        # shellcheck disable=SC2086
        out=$($remove $items 2>"$STATE/err")
        removed=$((removed + $(printf '%s\n' "$out" | grep -c .)))
        if [ ! -s "$STATE/err" ]; then
            break
        fi
        if [ "$attempt" -ge "$retries" ]; then
            log "$kind removal failed: $(cat "$STATE/err")"
            break
        fi
        log "$kind removal failed, retrying ($attempt/$retries): $(cat "$STATE/err")"
        attempt=$((attempt + 1))
        sleep 1
    done
    echo "$removed"
}

prune() {
    tc=0 tn=0 tv=0 ti=0
    sort -u "$FILTERS" >"$STATE/filters.unique"
    while IFS= read -r msg; do
        [ -n "$msg" ] || continue
        # shellcheck disable=SC2046  # four counts
        set -- $(prune_message "$msg")
        tc=$((tc + $1)) tn=$((tn + $2)) tv=$((tv + $3)) ti=$((ti + $4))
    done <"$STATE/filters.unique"
    log "Removed $tc container(s), $tn network(s), $tv volume(s) $ti image(s)"
}

serve() {
    exec 3>&1
    signalled=''
    trap 'signalled=1' TERM INT  # as PID 1, a signal without a handler would be ignored
    mkdir -p "$CLIENTS"
    rm -f "$CLIENTS"/* "$LEFT"
    : >"$FILTERS"
    # Listen before anything else: testcontainers-python connects as soon as the container runs
    # (its wait for "Started!" is set after start, so it never applies), and docker-proxy accepts
    # on the published port even while nothing listens inside, then drops the connection.
    nc -ll -p "$PORT" -e "$HANDLER_SHELL" "$SELF" handle &
    nc_pid=$!
    tries=0
    until listening; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ] || ! kill -0 "$nc_pid" 2>/dev/null; then
            log "could not listen on port $PORT"
            exit 1
        fi
        sleep 0.05
    done
    if ! api=$("$DOCKER" version --format '{{.Server.APIVersion}}' 2>&1); then
        log "cannot reach the Docker API at /var/run/docker.sock: $api"
        kill "$nc_pid"
        exit 1
    fi
    log "Docker API $api available; listening on port $PORT"

    connect=$(ticks "${RYUK_CONNECTION_TIMEOUT:-60s}" 600)
    reconnect=$(ticks "${RYUK_RECONNECTION_TIMEOUT:-10s}" 100)
    shutdown=$(ticks "${RYUK_SHUTDOWN_TIMEOUT:-10m}" 6000)
    [ "$connect" -gt 0 ] || connect=1
    log "Started!"

    seen=0 idle=0 waited=0 clients=0
    while :; do
        clients=$(count_clients)
        if [ -e "$LEFT" ]; then
            rm -f "$LEFT"
            seen=1 idle=0
        fi
        if [ "$clients" -gt 0 ]; then
            seen=1 idle=0
        fi
        if [ -n "$signalled" ]; then
            if [ "$clients" -eq 0 ]; then
                log "signal received, no client connected"
                break
            fi
            waited=$((waited + 1))
            if [ "$waited" -gt "$shutdown" ]; then
                log "signal received, shutdown timeout with $clients client(s) connected"
                break
            fi
        elif [ "$clients" -eq 0 ]; then
            if [ "$seen" -eq 1 ] && [ "$idle" -ge "$reconnect" ]; then
                log "timed out waiting for re-connection"
                break
            fi
            if [ "$seen" -eq 0 ] && [ "$idle" -ge "$connect" ]; then
                log "timed out waiting for the first connection"
                break
            fi
            idle=$((idle + 1))
        fi
        sleep 0.1
    done

    # Accept no one from here on: a client refused now retries and gets a new reaper.
    kill "$nc_pid" 2>/dev/null
    prune
    log "done"
}

handle() {
    exec 3>&2
    trap '' PIPE
    me=$CLIENTS/$$
    : >"$me"
    trap ': >"$LEFT"; rm -f "$me"; log "client disconnected"' EXIT
    log "client connected"
    cr=$(printf '\r')
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%"$cr"}
        if [ -z "$line" ]; then
            log "empty filter received"
            continue
        fi
        printf '%s\n' "$line" >>"$FILTERS"
        log "adding filter $line"
        printf 'ACK\n' || log "ack write failed"
    done
}

case ${1:-} in
    handle) handle ;;
    "") serve ;;
    *)
        echo "usage: $SELF [handle]" >&2
        exit 2
        ;;
esac
