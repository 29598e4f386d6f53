#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1, resolved from Maven
# Central instead of the release tarball (see pom.xml next to this script).
#
#   kafka.sh fetch          copy the broker's runtime jars into .cache/kafka/lib-<version> (once; mvn, ~/.m2)
#   kafka.sh up | start     fetch if needed, format storage on first use, start, wait until ready (90 s)
#   kafka.sh down | stop    SIGTERM (controlled shutdown), SIGKILL after 30 s
#   kafka.sh status         exit 0 when the broker process exists (running or paused), 3 when not
#   kafka.sh pause | resume SIGSTOP / SIGCONT the broker JVM: a hung broker for fault tests
#   kafka.sh kill           SIGKILL: a crashed broker for fault tests
#   kafka.sh wipe           stop, then delete the instance directory (config, data, log)
#
# Environment, so tests can run isolated brokers next to the default one:
#   KAFKA_INSTANCE_DIR     default .cache/kafka/instance-default (a relative path is taken from the repo root)
#   KAFKA_PORT             client listener, default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller listener, default 9093
#   KAFKA_SASL_PORT        optional: also a SASL_SSL listener (SASL/PLAIN over TLS) on localhost:<port>, for
#                          testing clients that authenticate. Users: admin/admin-secret and
#                          bridge/bridge-secret; the CA that signed the broker's certificate is written to
#                          <instance>/tls/ca.pem. Unset (the default): PLAINTEXT only, as before.
#   KAFKA_HEAP             broker heap flags, default "-Xms256m -Xmx768m"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
pom="$here/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
lib="$root/.cache/kafka/lib-$version"
instance=${KAFKA_INSTANCE_DIR:-.cache/kafka/instance-default}
[[ $instance == /* ]] || instance="$root/$instance"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
heap=${KAFKA_HEAP:--Xms256m -Xmx768m}
sasl_port=${KAFKA_SASL_PORT:-}
pidfile="$instance/kafka.pid"
logfile="$instance/kafka.log"
ready_timeout=90
jvm_common=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$instance/log4j2.properties")

say() { echo "kafka[$(basename "$instance")]: $*"; }
fail() {
  say "$*" >&2
  exit 1
}

# Locks serialise commands that change state: concurrent test sessions share the default broker and must
# not both format or start it. fd 8 (instance) and fd 9 (fetch) are closed for the JVM, which outlives us.
lock_instance() {
  mkdir -p "$(dirname "$instance")"
  exec 8>"$instance.lock"
  flock -w 300 8 || fail "timed out waiting for $instance.lock"
}

lock_fetch() {
  mkdir -p "$root/.cache/kafka"
  exec 9>"$root/.cache/kafka/fetch.lock"
  flock -w 600 9 || fail "timed out waiting for another fetch"
}

# The jars without which the broker or the format tool cannot start, and a stamp of the pom that produced
# them, so that a changed pom (e.g. another log4j) is fetched again although the Kafka version is the same.
fetched() {
  [[ "$(cat "$lib/.pom.sha256" 2>/dev/null)" == "$(sha256sum <"$pom")" ]] || return 1
  local jar
  for jar in kafka_2.13 kafka-server kafka-metadata kafka-raft kafka-storage kafka-clients scala-library \
    log4j-api log4j-core log4j-slf4j-impl; do
    compgen -G "$lib/$jar-[0-9]*.jar" >/dev/null || return 1
  done
}

fetch() {
  fetched && return 0
  lock_fetch
  fetched && return 0
  say "fetching Apache Kafka $version from Maven Central into $lib"
  local tmp
  tmp=$(mktemp -d "$lib.tmp.XXXXXX")
  chmod 755 "$tmp"
  # Maven 3.8 prints colour resets even with -B -q: keep its output in a file and show it only on failure.
  if ! mvn -B -q -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$lib.fetch.log" 2>&1; then
    cat "$lib.fetch.log" >&2
    rm -rf "$tmp"
    fail "mvn could not resolve the broker jars"
  fi
  sha256sum <"$pom" >"$tmp/.pom.sha256"
  rm -rf "$lib"
  mv "$tmp" "$lib"
  fetched || fail "$lib lacks broker jars after the fetch"
}

# First letter of the process state (R, S, T = stopped, Z = zombie); empty when there is no such process.
proc_state() { ps -o stat= -p "$1" 2>/dev/null | cut -c1 || true; }

# After SIGKILL the JVM's main thread is a zombie while other threads still hold the listening sockets, so a
# process only counts as gone once it is a zombie with no thread left (or reaped).
alive() {
  local state threads
  read -r state threads < <(ps -o stat=,nlwp= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* || $threads -gt 1 ]]
}

# The pid of this instance's broker. A pid file can outlive its JVM (SIGKILL, reboot) and the pid can be
# reused, so the process must also be a JVM started with this instance's server.properties.
broker_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  alive "$pid" || return 1
  ps -ww -o args= -p "$pid" | grep -qF -- "$instance/server.properties" || return 1
  echo "$pid"
}

wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

listening() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Where the running broker listens: written by the `up` that started it, whatever KAFKA_PORT says now.
running_bootstrap() { sed -n 's|^advertised.listeners=PLAINTEXT://\([^,]*\).*|\1|p' "$instance/server.properties"; }

# A CA and a broker certificate for localhost/127.0.0.1 (PKCS12, JDK keytool only), made once per instance.
sasl_certificates() {
  local tls="$instance/tls" password=changeit
  [[ -f "$tls/broker.p12" && -f "$tls/ca.pem" ]] && return 0
  rm -rf "$tls"
  mkdir -p "$tls"
  (
    cd "$tls"
    keytool -genkeypair -alias ca -dname CN=idaas-bridge-test-ca -keyalg RSA -keysize 2048 -validity 3650 \
      -ext bc:c -storetype PKCS12 -keystore ca.p12 -storepass $password -keypass $password
    keytool -exportcert -alias ca -rfc -keystore ca.p12 -storepass $password >ca.pem
    keytool -genkeypair -alias broker -dname CN=localhost -keyalg RSA -keysize 2048 -validity 3650 \
      -storetype PKCS12 -keystore broker.p12 -storepass $password -keypass $password
    keytool -certreq -alias broker -keystore broker.p12 -storepass $password |
      keytool -gencert -alias ca -keystore ca.p12 -storepass $password -validity 3650 -rfc \
        -ext "SAN=dns:localhost,ip:127.0.0.1" -ext ku:c=digitalSignature,keyEncipherment \
        -ext eku=serverAuth,clientAuth >broker.pem
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore broker.p12 -storepass $password
    keytool -importcert -alias broker -file broker.pem -keystore broker.p12 -storepass $password
  ) >"$instance/tls.log" 2>&1 || {
    cat "$instance/tls.log" >&2
    fail "making the SASL_SSL listener's certificates failed"
  }
}

# The listener lines of server.properties: PLAINTEXT and CONTROLLER, plus SASL_SSL when KAFKA_SASL_PORT is set.
listener_properties() {
  if [[ -z $sasl_port ]]; then
    cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
PROPS
    return
  fi
  local plain="org.apache.kafka.common.security.plain.PlainLoginModule"
  cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,SASL_SSL://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://localhost:$sasl_port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$instance/tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=changeit
listener.name.sasl_ssl.ssl.key.password=changeit
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain required username="admin" password="admin-secret" user_admin="admin-secret" user_bridge="bridge-secret";
PROPS
}

write_config() {
  mkdir -p "$instance/data"
  cat >"$instance/log4j2.properties" <<PROPS
status = warn
name = kafka-local
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
PROPS
  # Static quorum (controller.quorum.voters), so storage is formatted without --standalone. Internal topics
  # get one partition each so the first consumer group or transaction does not wait for 50 partitions;
  # topics are created explicitly, as in production, hence no auto-creation. After a SIGKILL the restarted
  # broker cannot register until its old session expires (DUPLICATE_BROKER_REGISTRATION): a 4 s session
  # instead of 9 s makes a crash-and-restart ready in about 6 s instead of 12.
  cat >"$instance/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
$(listener_properties)
inter.broker.listener.name=PLAINTEXT
log.dirs=$instance/data
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=2
log.retention.check.interval.ms=1000
PROPS
}

format() {
  local cluster_id
  # Same shape as org.apache.kafka.common.Uuid.randomUuid(), without paying for a JVM start.
  cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break')
  # Short-lived: C1 only and the serial collector start fastest.
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${jvm_common[@]}" -cp "$lib/*" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$instance/server.properties" \
    >"$instance/format.log" 2>&1 || {
    cat "$instance/format.log" >&2
    fail "formatting $instance/data failed"
  }
}

wait_ready() {
  local pid=$1 deadline=$((SECONDS + ready_timeout))
  until grep -q "Kafka Server started" "$logfile"; do
    if ! alive "$pid"; then
      rm -f "$pidfile"
      say "the broker exited during start-up; log tail:" >&2
      tail -n 40 "$logfile" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      say "not ready after $ready_timeout s; log tail:" >&2
      tail -n 40 "$logfile" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.2
  done
}

up() {
  lock_instance
  local pid started=${EPOCHREALTIME//[.,]/}
  if pid=$(broker_pid); then
    [[ $(proc_state "$pid") != T ]] || fail "running but paused (pid $pid); run: $0 resume"
    local bootstrap
    bootstrap=$(running_bootstrap)
    [[ $bootstrap == "127.0.0.1:$port" ]] || fail "already running on $bootstrap, not 127.0.0.1:$port"
    wait_ready "$pid"
    say "already running on $bootstrap (pid $pid)"
    return 0
  fi
  local p
  for p in "$port" "$controller_port" $sasl_port; do
    ! listening "$p" || fail "127.0.0.1:$p is in use by another process; set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
  done
  fetch
  [[ -z $sasl_port ]] || sasl_certificates
  write_config
  [[ -f "$instance/data/meta.properties" ]] || format
  : >"$logfile"
  # Kafka's own G1 flags. C1 only (TieredStopAtLevel=1): on 2 cores C2 compiler threads compete with start-up
  # and with the tests (measured: about 4 s -> 2.5 s to "started"); test loads never need C2's peak speed.
  # The daemon outlives this script: it keeps no descriptor but its log. One inherited from whoever ran us
  # would stay open as long as the broker runs, and with it any lock held through it: our own instance and
  # fetch locks (8, 9), or a caller's (`flock bench.lock make bench` starts the broker through kafka-up; the
  # broker then held the machine's measuring lock until it stopped). Nor does it share its starter's
  # process group or session (setsid): `make run` starts it, then serves in the foreground, and Ctrl-C
  # signals the terminal's whole foreground group; Kafka shuts down on SIGINT, so the bridge lost its broker
  # in the middle of its own shutdown's flush. setsid forks only when run by a group leader, which this
  # background subshell is not, so the pid below stays the broker's.
  # shellcheck disable=SC2086  # $heap is a list of JVM flags
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      ((fd <= 2)) || eval "exec $fd>&-"
    done
    exec setsid nohup java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:TieredStopAtLevel=1 "${jvm_common[@]}" -cp "$lib/*" \
      kafka.Kafka "$instance/server.properties" \
      >>"$logfile" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_ready "$pid"
  local tenths=$(((${EPOCHREALTIME//[.,]/} - started) / 100000))
  say "Apache Kafka $version ready on 127.0.0.1:$port in $((tenths / 10)).$((tenths % 10)) s (pid $pid)"
}

down() {
  lock_instance
  local pid
  if ! pid=$(broker_pid); then
    rm -f "$pidfile"
    say "not running"
    return 0
  fi
  kill -CONT "$pid" # a paused JVM would never act on SIGTERM
  kill -TERM "$pid"
  if ! wait_gone "$pid" 30; then
    say "no clean shutdown after 30 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || fail "pid $pid survived SIGKILL"
  fi
  rm -f "$pidfile"
  say "stopped"
}

kill_broker() {
  lock_instance
  local pid
  pid=$(broker_pid) || fail "not running"
  kill -KILL "$pid"
  wait_gone "$pid" 10 || fail "pid $pid survived SIGKILL"
  rm -f "$pidfile"
  say "killed (pid $pid)"
}

signal_broker() {
  local pid
  pid=$(broker_pid) || fail "not running"
  kill "-$1" "$pid"
}

status() {
  local pid
  if ! pid=$(broker_pid); then
    say "not running"
    exit 3
  fi
  local bootstrap
  bootstrap=$(running_bootstrap)
  if [[ $(proc_state "$pid") == T ]]; then
    say "paused (pid $pid, $bootstrap)"
  else
    say "running on $bootstrap (pid $pid)"
  fi
}

wipe() {
  down
  rm -rf "$instance"
  say "wiped $instance"
}

case "${1:-}" in
  fetch) fetch ;;
  up | start) up ;;
  down | stop) down ;;
  status) status ;;
  pause) signal_broker STOP ;;
  resume) signal_broker CONT ;;
  kill) kill_broker ;;
  wipe) wipe ;;
  *)
    echo "usage: $0 fetch|up|start|down|stop|status|pause|resume|kill|wipe" >&2
    exit 2
    ;;
esac
