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
