{{/* Names and labels. */}}
{{- define "idaas-siem-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "idaas-siem-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "idaas-siem-bridge.instanceLabels" -}}
app.kubernetes.io/name: {{ include "idaas-siem-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The bridge pods; the topics Job's pods have component "topics" and match no bridge selector. */}}
{{- define "idaas-siem-bridge.selectorLabels" -}}
{{ include "idaas-siem-bridge.instanceLabels" . }}
app.kubernetes.io/component: bridge
{{- end }}

{{- define "idaas-siem-bridge.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "idaas-siem-bridge.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: idaas-siem-bridge
{{- end }}

{{- define "idaas-siem-bridge.labels" -}}
{{ include "idaas-siem-bridge.commonLabels" . }}
app.kubernetes.io/component: bridge
{{- end }}

{{/* Annotations of the pre-install/pre-upgrade hook objects of the topics Job, given the weight. */}}
{{- define "idaas-siem-bridge.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{- define "idaas-siem-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "idaas-siem-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "idaas-siem-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret the bridge reads its environment from: the chart's own or secrets.existingSecret. */}}
{{- define "idaas-siem-bridge.secretName" -}}
{{- default (include "idaas-siem-bridge.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "idaas-siem-bridge.kafkaTlsSecretName" -}}
{{- default (printf "%s-kafka-tls" (include "idaas-siem-bridge.fullname" .)) .Values.kafkaTls.existingSecret }}
{{- end }}

{{- define "idaas-siem-bridge.workloadKind" -}}
{{- if .Values.spool.persistence.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/*
A Kubernetes quantity ("2Gi", "512M", "1073741824") in bytes, for the spool size checks; values.schema.json
only lets a whole number with one of these suffixes through.
*/}}
{{- define "idaas-siem-bridge.bytes" -}}
{{- $text := toString . }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $number := regexFind "^[0-9]+" $text }}
{{- mul (atoi $number) (get $units (trimPrefix $number $text) | default 1) }}
{{- end }}

{{/*
Checks that run before anything renders: fail fast with the value to fix.
*/}}
{{- define "idaas-siem-bridge.validate" -}}
{{- $config := .Values.config }}
{{- if not $config.kafka.bootstrap_servers }}
{{- fail "config.kafka.bootstrap_servers is required: the Kafka bootstrap address, e.g. --set config.kafka.bootstrap_servers=kafka.kafka.svc:9092" }}
{{- end }}
{{- if not $config.webhooks }}
{{- fail "config.webhooks is empty: add one entry (name: ...) per IDaaS webhook" }}
{{- end }}
{{- $secrets := .Values.secrets }}
{{- if $secrets.existingSecret }}
{{- if or $secrets.webhookTokens $secrets.kafkaSaslPassword $secrets.kafkaClientProperties $secrets.adminApiSharedSecret }}
{{- fail "secrets.existingSecret is set: put the tokens, Kafka and Admin API secrets in that Secret and leave secrets.webhookTokens, secrets.kafkaSaslPassword, secrets.kafkaClientProperties and secrets.adminApiSharedSecret empty" }}
{{- end }}
{{- else }}
{{- if and $config.admin_api.hostname (not $secrets.adminApiSharedSecret) }}
{{- fail "config.admin_api.hostname is set: set secrets.adminApiSharedSecret (the Administration API application's sharedSecret) or use secrets.existingSecret" }}
{{- end }}
{{- range $config.webhooks }}
{{- if not (get $secrets.webhookTokens .name) }}
{{- fail (printf "webhook %q has no token: set secrets.webhookTokens.%s (the token IDaaS showed for the webhook) or use secrets.existingSecret" .name .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $grace := int (ceil $config.server.shutdown_grace_seconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add .Values.preStopSleepSeconds $grace) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v) + config.server.shutdown_grace_seconds (%v), or pods are killed mid-drain" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds $config.server.shutdown_grace_seconds) }}
{{- end }}
{{- $needed := add (int64 $config.spool.max_bytes) (int64 $config.spool.segment_bytes) }}
{{- $volume := ternary .Values.spool.persistence.size .Values.spool.sizeLimit .Values.spool.persistence.enabled }}
{{- if lt (int64 (include "idaas-siem-bridge.bytes" $volume)) $needed }}
{{- fail (printf "the spool volume (%v) is smaller than config.spool.max_bytes + config.spool.segment_bytes (%v bytes): raise spool.sizeLimit / spool.persistence.size or lower config.spool.max_bytes" $volume $needed) }}
{{- end }}
{{- /* Kafka TLS/SASL consistency, Ingress or HTTPRoute: values.schema.json (tools/values_schema.py), which
`helm lint` also enforces. */}}
{{- end }}

{{/*
Pod annotation values that change when the Secrets the pods read at start-up change, without revealing any
secret value: a hash over the Secret's name, its key names (the environment variable names, which the pod
spec shows anyway), the public Kafka certificates and secrets.rolloutToken. A changed token or password
under an existing key changes none of these: bump secrets.rolloutToken with it (any new string) to roll the
pods.
*/}}
{{- define "idaas-siem-bridge.secretChecksum" -}}
{{- $keys := list }}
{{- if not .Values.secrets.existingSecret }}
{{- $keys = include "idaas-siem-bridge.secretEnv" . | fromYaml | keys | sortAlpha }}
{{- end }}
{{- list (include "idaas-siem-bridge.secretName" .) $keys .Values.secrets.rolloutToken | toJson | sha256sum }}
{{- end }}

{{- define "idaas-siem-bridge.kafkaTlsChecksum" -}}
{{- $tls := .Values.kafkaTls }}
{{- list (include "idaas-siem-bridge.kafkaTlsSecretName" .) $tls.caCert $tls.clientCert (not (empty $tls.clientKey)) $tls.clientAuth .Values.secrets.rolloutToken | toJson | sha256sum }}
{{- end }}

{{/* This release's `helm test` pod, as a NetworkPolicy peer: it asks /readyz and the webhook paths. */}}
{{- define "idaas-siem-bridge.testPodPeer" -}}
- podSelector:
    matchLabels:
      {{- include "idaas-siem-bridge.instanceLabels" . | nindent 6 }}
      app.kubernetes.io/component: test
{{- end }}

{{/* server.public_base_url: the configured one, else https://<first host> of the Ingress or HTTPRoute. */}}
{{- define "idaas-siem-bridge.publicBaseUrl" -}}
{{- if .Values.config.server.public_base_url }}
{{- .Values.config.server.public_base_url }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- printf "https://%s" (first .Values.ingress.hosts).host }}
{{- else if and .Values.httpRoute.enabled .Values.httpRoute.hostnames }}
{{- printf "https://%s" (first .Values.httpRoute.hostnames) }}
{{- end }}
{{- end }}

{{/* librdkafka client properties: the configured ones plus the mounted TLS file locations. */}}
{{- define "idaas-siem-bridge.clientProperties" -}}
{{- $properties := deepCopy (.Values.config.kafka.client_properties | default dict) }}
{{- if .Values.kafkaTls.enabled }}
{{- $_ := set $properties "ssl.ca.location" "/etc/kafka-tls/ca.crt" }}
{{- if or .Values.kafkaTls.clientCert .Values.kafkaTls.clientAuth }}
{{- $_ := set $properties "ssl.certificate.location" "/etc/kafka-tls/tls.crt" }}
{{- $_ := set $properties "ssl.key.location" "/etc/kafka-tls/tls.key" }}
{{- end }}
{{- end }}
{{- toJson $properties }}
{{- end }}

{{/*
bridge.yaml, in the bridge's own schema (config/bridge.yaml). Values are written with toJson, which is valid
YAML and keeps numbers, booleans and strings exactly.
*/}}
{{- define "idaas-siem-bridge.bridgeYaml" -}}
{{- $config := .Values.config -}}
# Rendered by the idaas-siem-bridge Helm chart from its values (config.*). Secrets come from the environment.
server:
  host: "0.0.0.0"
  port: 8080
  ops_host: "0.0.0.0"
  ops_port: 9464
  tls_cert_file: ""
  tls_key_file: ""
  public_base_url: {{ include "idaas-siem-bridge.publicBaseUrl" . | toJson }}
  trusted_proxies: {{ $config.server.trusted_proxies | default list | toJson }}
  max_body_bytes: {{ $config.server.max_body_bytes | toJson }}
  limit_concurrency: {{ $config.server.limit_concurrency | toJson }}
  max_connections: {{ $config.server.max_connections | toJson }}
  keep_alive_timeout_seconds: {{ $config.server.keep_alive_timeout_seconds | toJson }}
  header_read_timeout_seconds: {{ $config.server.header_read_timeout_seconds | toJson }}
  body_read_timeout_seconds: {{ $config.server.body_read_timeout_seconds | toJson }}
  tls_handshake_timeout_seconds: {{ $config.server.tls_handshake_timeout_seconds | toJson }}
  max_header_bytes: {{ $config.server.max_header_bytes | toJson }}
  max_header_fields: {{ $config.server.max_header_fields | toJson }}
  unauthenticated_limit_concurrency: {{ $config.server.unauthenticated_limit_concurrency | toJson }}
  unauthenticated_body_timeout_seconds: {{ $config.server.unauthenticated_body_timeout_seconds | toJson }}
  shutdown_grace_seconds: {{ $config.server.shutdown_grace_seconds | toJson }}
  workers: {{ $config.server.workers | toJson }}
signature:
  created_window_seconds: {{ $config.signature.created_window_seconds | toJson }}
webhooks:
{{- range $config.webhooks }}
  - name: {{ .name | toJson }}
    public_url: {{ .public_url | default "" | toJson }}
    legacy_sha2_signature: {{ .legacy_sha2_signature | default false | toJson }}
{{- end }}
kafka:
  bootstrap_servers: {{ $config.kafka.bootstrap_servers | toJson }}
  client_properties: {{ include "idaas-siem-bridge.clientProperties" . }}
  ack_deadline_seconds: {{ $config.kafka.ack_deadline_seconds | toJson }}
  statistics_interval_seconds: {{ $config.kafka.statistics_interval_seconds | toJson }}
  max_record_bytes: {{ $config.kafka.max_record_bytes | toJson }}
  topics:
{{- range $key := list "authentication" "user" "authenticator" "unknown" }}
{{- $topic := get $config.kafka.topics $key }}
    {{ $key }}: {name: {{ $topic.name | toJson }}, format: {{ $topic.format | default "native" | toJson }}}
{{- end }}
    deadletter: {name: {{ $config.kafka.topics.deadletter.name | toJson }}}
dedup:
  ttl_seconds: {{ $config.dedup.ttl_seconds | toJson }}
  max_entries: {{ $config.dedup.max_entries | toJson }}
spool:
  path: /var/lib/idaas-bridge/spool
  max_bytes: {{ $config.spool.max_bytes | toJson }}
  segment_bytes: {{ $config.spool.segment_bytes | toJson }}
  ack_mode: {{ $config.spool.ack_mode | toJson }}
logging:
  level: {{ $config.logging.level | toJson }}
admin_api:
{{- range $key := list "hostname" "application_id" "ca_file" "request_timeout_seconds" "webhook_poll_seconds" "quiet_poll_seconds" "reenable" "reenable_test_wait_seconds" "reenable_max_per_hour" "backfill_automatic" "backfill_downtime" "backfill_max_gap_seconds" "backfill_margin_seconds" "backfill_audit_lag_seconds" "audit_topic" }}
  {{ $key }}: {{ get $config.admin_api $key | toJson }}
{{- end }}
{{- end }}

{{/* Secret data: environment variable name -> value, exactly as the bridge reads them. */}}
{{- define "idaas-siem-bridge.secretEnv" -}}
{{- $env := dict }}
{{- range $name, $tokens := .Values.secrets.webhookTokens }}
{{- $variable := printf "IDAAS_BRIDGE_WEBHOOK_%s_TOKENS" (regexReplaceAll "[^A-Za-z0-9]" $name "_" | upper) }}
{{- $_ := set $env $variable (kindIs "slice" $tokens | ternary (join "," $tokens) (toString $tokens)) }}
{{- end }}
{{- if .Values.secrets.kafkaSaslPassword }}
{{- $_ := set $env "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD" .Values.secrets.kafkaSaslPassword }}
{{- end }}
{{- if .Values.secrets.adminApiSharedSecret }}
{{- $_ := set $env "IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET" .Values.secrets.adminApiSharedSecret }}
{{- end }}
{{- range $property, $value := .Values.secrets.kafkaClientProperties }}
{{- $_ := set $env (printf "IDAAS_BRIDGE_KAFKA_CLIENT_%s" ($property | replace "." "_" | upper)) (toString $value) }}
{{- end }}
{{- range $variable, $value := $env }}
{{ $variable }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Kafka TLS Secret data from the PEM values. */}}
{{- define "idaas-siem-bridge.kafkaTlsData" -}}
ca.crt: {{ .Values.kafkaTls.caCert | b64enc | quote }}
{{- if .Values.kafkaTls.clientCert }}
tls.crt: {{ .Values.kafkaTls.clientCert | b64enc | quote }}
tls.key: {{ .Values.kafkaTls.clientKey | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Volumes shared by the bridge pods and the topics Job, called with
(dict "root" $ "configMap" <ConfigMap name> "kafkaTlsSecret" <Secret name>).
*/}}
{{- define "idaas-siem-bridge.configVolumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
{{- if .root.Values.kafkaTls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ .kafkaTlsSecret }}
    defaultMode: 0440
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "idaas-siem-bridge.configMounts" -}}
- name: config
  mountPath: /etc/idaas-bridge
  readOnly: true
{{- if .Values.kafkaTls.enabled }}
- name: kafka-tls
  mountPath: /etc/kafka-tls
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}
