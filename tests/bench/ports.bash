# Shared by the bench scripts (sourced, not run by `make bench`, which runs *.sh).

# A port nothing listens on now (a small race with other processes is acceptable here).
free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}
