# Shared by bench/run.sh and bench/profile.sh (sourced, not run): logging, the processes a script
# started (each stopped by its PID on exit), waiting for a port, and leaf certificates from a
# test CA. A script sets LOG_TAG before sourcing it.

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-bench}" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

STARTED=()   # every PID the script started; each is stopped by its id on exit
cleanup() {
    local rc=$? pid
    set +e
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port [tenths of a second to wait, 100 unless given]
    for _ in $(seq "${2:-100}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

# In a folder holding ca.pem and ca.key: quiet (output only on failure) and leaf NAME SUBJECT
# EXTENSIONS, an RSA 2048 leaf signed by that CA for 30 days (NAME.pem, NAME.key).
quiet() { "$@" >/dev/null 2>&1 || { "$@"; exit 1; }; }
leaf() {
    quiet openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf '%s\n' "$3" >"$1.ext"
    quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
        -days 30 -sha256 -extfile "$1.ext"
}
