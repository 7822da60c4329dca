#!/usr/bin/env bash
# Start or stop throwaway PostgreSQL 15 and MariaDB servers for the repository tests.
#
#   eval "$(scripts/databases.sh start)"   # prints the DECNET_TEST_*_URL exports
#   scripts/databases.sh stop              # stops both and deletes their data
#
# Both listen on loopback only, on their own ports and in their own directory under /var/tmp,
# so they never clash with a system database. Needs Debian's postgresql-15 and mariadb-server
# (scripts/test.sh installs them) and root (the servers run as their own system users).
set -euo pipefail

ROOT=${DECNET_DB_DIR:-/var/tmp/decnet-test-dbs}
PG_PORT=${DECNET_TEST_PG_PORT:-55432}
MY_PORT=${DECNET_TEST_MYSQL_PORT:-53306}
PG_BIN=/usr/lib/postgresql/15/bin

log() { echo "databases: $*" >&2; }

wait_for() { # what command...
    local what=$1
    shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    log "$what did not come up; its log follows"
    cat "$ROOT"/*.log >&2 || true
    return 1
}

start_postgres() {
    local data=$ROOT/pg
    if ! [[ -f $data/PG_VERSION ]]; then
        install -d -o postgres -g postgres -m 700 "$data"
        runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -A trust -U decnet --no-sync >"$ROOT/pg-init.log" 2>&1
    fi
    install -d -o postgres -g postgres "$ROOT/pg-sock"
    install -o postgres -g postgres /dev/null "$ROOT/pg.log"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$ROOT/pg.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $ROOT/pg-sock -c fsync=off -c max_connections=200" \
        start >/dev/null
    wait_for PostgreSQL runuser -u postgres -- "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
    echo "export DECNET_TEST_PG_URL=postgres://decnet@127.0.0.1:$PG_PORT/postgres"
}

start_mariadb() {
    local data=$ROOT/mysql
    install -d -o mysql -g mysql "$ROOT/mysql-run"
    if ! [[ -d $data/mysql ]]; then
        install -d -o mysql -g mysql -m 700 "$data"
        mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=normal \
            --skip-test-db >"$ROOT/mysql-init.log" 2>&1
    fi
    (mariadbd --no-defaults --user=mysql --datadir="$data" --bind-address=127.0.0.1 --port="$MY_PORT" \
        --socket="$ROOT/mysql-run/mysqld.sock" --pid-file="$ROOT/mysql-run/mysqld.pid" \
        --innodb-flush-log-at-trx-commit=0 --max-connections=300 --skip-name-resolve \
        >"$ROOT/mysql.log" 2>&1 &)
    wait_for MariaDB mariadb --no-defaults -uroot -h127.0.0.1 -P"$MY_PORT" -e 'SELECT 1'
    mariadb --no-defaults -uroot -h127.0.0.1 -P"$MY_PORT" -e \
        "CREATE USER IF NOT EXISTS 'decnet'@'127.0.0.1' IDENTIFIED BY 'decnet';
         GRANT ALL ON *.* TO 'decnet'@'127.0.0.1' WITH GRANT OPTION;"
    echo "export DECNET_TEST_MYSQL_URL=mysql://decnet:decnet@127.0.0.1:$MY_PORT/mysql"
}

stop_all() {
    if [[ -f $ROOT/pg/postmaster.pid ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$ROOT/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [[ -f $ROOT/mysql-run/mysqld.pid ]]; then
        kill "$(cat "$ROOT/mysql-run/mysqld.pid")" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -f $ROOT/mysql-run/mysqld.pid ]] || break
            sleep 0.2
        done
    fi
    rm -rf "$ROOT"
}

case ${1:-} in
start)
    stop_all
    mkdir -p "$ROOT"
    chmod 755 "$ROOT"
    start_postgres
    start_mariadb
    log "PostgreSQL on 127.0.0.1:$PG_PORT, MariaDB on 127.0.0.1:$MY_PORT (data in $ROOT)"
    ;;
stop) stop_all ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
