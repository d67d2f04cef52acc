{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "env0-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. It also becomes the Prometheus job label through the ServiceMonitor,
which the Env0ExporterDown alert matches with job=~".*env0.*".
*/}}
{{- define "env0-exporter.fullname" -}}
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

{{- define "env0-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "env0-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "env0-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "env0-exporter.labels" -}}
helm.sh/chart: {{ include "env0-exporter.chart" . }}
{{ include "env0-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "env0-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "env0-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the credentials: the user's existingSecret or the chart's own. */}}
{{- define "env0-exporter.secretName" -}}
{{- default (include "env0-exporter.fullname" .) .Values.env0.existingSecret }}
{{- end }}

{{- define "env0-exporter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Credentials are needed unless the chart runs the demo simulator. */}}
{{- define "env0-exporter.needsCredentials" -}}
{{- if not .Values.demo }}true{{ end }}
{{- end }}

{{/*
Refuses to render a release that could only crash-loop: without credentials the exporter exits 2
(`--api-key ... is required`) at every start. Included once, at the top of the Deployment.
*/}}
{{- define "env0-exporter.requireCredentials" -}}
{{- if and (include "env0-exporter.needsCredentials" .) (not .Values.env0.existingSecret) (or (not .Values.env0.apiKey) (not .Values.env0.apiSecret)) }}
{{- fail "env0-exporter needs env0 credentials: set both env0.apiKey and env0.apiSecret (the chart keeps them in a Secret), or env0.existingSecret (the name of a Secret you made, holding the keys named in env0.existingSecretKeys), or demo=true to run the built-in env0 simulator without credentials" }}
{{- end }}
{{- end }}

{{/* Webhooks are on: asked for, and not the demo (which sends its own, with its own secret). */}}
{{- define "env0-exporter.webhook" -}}
{{- if and .Values.webhook.enabled (not .Values.demo) }}true{{ end }}
{{- end }}

{{/* What the chart's own Secret holds: the env0 credentials unless env0.existingSecret (or the
demo), and the webhook secret unless webhook.existingSecret. */}}
{{- define "env0-exporter.secretHasCredentials" -}}
{{- if and (include "env0-exporter.needsCredentials" .) (not .Values.env0.existingSecret) }}true{{ end }}
{{- end }}
{{- define "env0-exporter.secretHasWebhook" -}}
{{- if and (include "env0-exporter.webhook" .) (not .Values.webhook.existingSecret) }}true{{ end }}
{{- end }}
{{- define "env0-exporter.chartSecret" -}}
{{- if or (include "env0-exporter.secretHasCredentials" .) (include "env0-exporter.secretHasWebhook" .) }}true{{ end }}
{{- end }}

{{/* The Services' ports: http, and the webhook's own when it has one. */}}
{{- define "env0-exporter.servicePorts" -}}
- name: http
  port: {{ .Values.service.port }}
  targetPort: http
  protocol: TCP
{{- if and (include "env0-exporter.webhook" .) .Values.webhook.port }}
- name: webhook
  port: {{ .Values.webhook.port }}
  targetPort: webhook
  protocol: TCP
{{- end }}
{{- end }}

{{/*
Where a shard forwards the deliveries for another shard's environments: webhook.forwardUrlTemplate,
else each pod's name under the headless Service, on the port the webhook is served on ({ordinal}
is the target pod's ordinal; the exporter fills it in). HTTPS when that is the main port with TLS.
*/}}
{{- define "env0-exporter.webhookForwardUrlTemplate" -}}
{{- if .Values.webhook.forwardUrlTemplate }}
{{- .Values.webhook.forwardUrlTemplate }}
{{- else }}
{{- $fullname := include "env0-exporter.fullname" . -}}
{{- $port := .Values.webhook.port | default .Values.exporter.port -}}
{{- $scheme := ternary "https" "http" (and (not .Values.webhook.port) (not (empty .Values.web.tls.secretName))) -}}
{{- printf "%s://%s-{ordinal}.%s-headless.%s.svc:%v/webhooks/env0" $scheme $fullname $fullname .Release.Namespace $port }}
{{- end }}
{{- end }}

{{/* The Secret that holds the webhook secret: the user's webhook.existingSecret or the chart's own. */}}
{{- define "env0-exporter.webhookSecretName" -}}
{{- default (include "env0-exporter.fullname" .) .Values.webhook.existingSecret }}
{{- end }}

{{/*
Refuses webhook values that cannot work, naming what to set: webhooks without a secret (the
exporter would run without them, and env0's deliveries would get 404), an Ingress without
webhooks, webhooks with the demo (its simulator sends its own, signed with a secret of its own),
a webhook port equal to the main one (the exporter could not listen twice), or a webhook key
that would overwrite a credential in the chart's Secret. Included once, at the top of the
Deployment.
*/}}
{{- define "env0-exporter.requireWebhookSettings" -}}
{{- $w := .Values.webhook -}}
{{- if and $w.enabled .Values.demo }}
{{- fail "webhook.enabled does not apply with demo=true: the demo's simulator signs and sends its own webhooks to the exporter; set webhook.enabled=false, or demo=false with env0 credentials" }}
{{- end }}
{{- if and $w.ingress.enabled (not $w.enabled) }}
{{- fail "webhook.ingress.enabled needs webhook.enabled=true (and webhook.secret or webhook.existingSecret): the Ingress would route env0 to an endpoint that is off" }}
{{- end }}
{{- if and (include "env0-exporter.webhook" .) (not $w.existingSecret) (not $w.secret) }}
{{- fail "webhook.enabled needs the webhook secret: set webhook.secret (the chart keeps it in its Secret) or webhook.existingSecret (the name of a Secret you made, holding it under webhook.existingSecretKey)" }}
{{- end }}
{{- if and (include "env0-exporter.webhook" .) $w.port (eq (int $w.port) (int .Values.exporter.port)) }}
{{- fail "webhook.port must differ from exporter.port (or be 0 to serve the webhook on the main port)" }}
{{- end }}
{{- if and (include "env0-exporter.secretHasWebhook" .) (include "env0-exporter.secretHasCredentials" .) (has $w.existingSecretKey (list .Values.env0.existingSecretKeys.apiKey .Values.env0.existingSecretKeys.apiSecret)) }}
{{- fail "webhook.existingSecretKey must differ from env0.existingSecretKeys: both secrets go into the chart's Secret" }}
{{- end }}
{{- end }}

{{/*
Refuses shard values that cannot work: several replicas of each shard (each would read the same
environments, and env0 would be polled as many times over), or one existing claim for several
shards (a ReadWriteOnce volume cannot serve several pods, nor one state file several shards).
Included once, at the top of the Deployment/StatefulSet.
*/}}
{{- define "env0-exporter.requireShardSettings" -}}
{{- $shards := int (default 1 .Values.shards) -}}
{{- if and (gt $shards 1) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount must stay 1 with shards above 1: the StatefulSet runs one pod per shard (shards), and more replicas of a shard would poll env0 for the same environments twice" }}
{{- end }}
{{- if and (gt $shards 1) .Values.persistence.enabled .Values.persistence.existingClaim }}
{{- fail "persistence.existingClaim cannot serve several shards: with shards above 1 each pod gets a volume of its own from persistence.size and persistence.storageClass; leave persistence.existingClaim empty" }}
{{- end }}
{{- end }}
