#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker+controller) on loopback, fetched from Maven Central.
#   kafka.sh fetch | up | down | status | pause | resume | kill | wipe
# Environment (for tests that need an isolated broker): KAFKA_INSTANCE_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT,
# KAFKA_HEAP.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
lib="$root/.cache/kafka/lib-$version"
instance=${KAFKA_INSTANCE_DIR:-$root/.cache/kafka/instance-default}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
heap=${KAFKA_HEAP:--Xms256m -Xmx768m}
pidfile="$instance/kafka.pid"
logfile="$instance/kafka.log"

fetched() {
  for jar in kafka_2.13 kafka-server kafka-metadata kafka-raft kafka-storage scala-library log4j-slf4j-impl; do
    compgen -G "$lib/$jar-*.jar" >/dev/null || return 1
  done
}

fetch() {
  fetched && return 0
  echo "kafka: fetching Apache Kafka $version from Maven Central into $lib"
  mkdir -p "$lib.tmp"
  mvn -B -q -f "$here/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$lib.tmp" -DincludeScope=runtime
  rm -rf "$lib" && mv "$lib.tmp" "$lib"
  fetched || { echo "kafka: $lib is missing broker jars after the fetch" >&2; exit 1; }
}

running() {
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

write_config() {
  mkdir -p "$instance/data"
  cat > "$instance/log4j2.properties" <<PROPS
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
  cat > "$instance/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$instance/data
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
PROPS
}

up() {
  if running; then
    echo "kafka: already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  fetch
  write_config
  local java_opts=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$instance/log4j2.properties")
  if [[ ! -f "$instance/data/meta.properties" ]]; then
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break')
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${java_opts[@]}" -cp "$lib/*" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$instance/server.properties" --ignore-formatted \
      > "$instance/format.log" 2>&1 || { cat "$instance/format.log" >&2; exit 1; }
  fi
  : > "$logfile"
  # shellcheck disable=SC2086
  nohup java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    "${java_opts[@]}" -cp "$lib/*" kafka.Kafka "$instance/server.properties" >> "$logfile" 2>&1 &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + 90))
  until grep -q "Kafka Server started" "$logfile"; do
    if ! running; then
      echo "kafka: broker exited during start-up; log tail:" >&2; tail -n 40 "$logfile" >&2; exit 1
    fi
    if (( SECONDS > deadline )); then
      echo "kafka: not ready after 90 s; log tail:" >&2; tail -n 40 "$logfile" >&2; exit 1
    fi
    sleep 0.3
  done
  echo "kafka: Apache Kafka $version ready on 127.0.0.1:$port (pid $(cat "$pidfile"), data $instance/data)"
}

down() {
  if ! running; then
    rm -f "$pidfile"
    echo "kafka: not running"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  echo "kafka: stopped"
}

signal_broker() {
  running || { echo "kafka: not running" >&2; exit 1; }
  kill "-$1" "$(cat "$pidfile")"
}

case "${1:-}" in
  fetch) fetch ;;
  up|start) up ;;
  down|stop) down ;;
  status) if running; then echo "kafka: running (pid $(cat "$pidfile"))"; else echo "kafka: not running"; exit 3; fi ;;
  pause) signal_broker STOP ;;
  resume) signal_broker CONT ;;
  kill) signal_broker KILL; rm -f "$pidfile" ;;
  wipe) down; rm -rf "$instance" ;;
  *) echo "usage: $0 fetch|up|down|status|pause|resume|kill|wipe" >&2; exit 2 ;;
esac
