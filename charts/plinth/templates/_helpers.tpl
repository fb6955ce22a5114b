{{/*
Names and labels, following `helm create`.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "plinth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else <release>-<chart> (just <release> when it already
contains the chart name). Truncated to 63 characters, the DNS label limit.
*/}}
{{- define "plinth.fullname" -}}
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

{{/* The webhook's Service, and the Secret holding its certificate. */}}
{{- define "plinth.webhookService" -}}
{{- printf "%s-webhook" (include "plinth.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}
{{- define "plinth.webhookSecret" -}}
{{- if eq .Values.webhook.certificate "secret" }}
{{- required "webhook.certificate=secret needs webhook.certificateSecret" .Values.webhook.certificateSecret }}
{{- else }}
{{- printf "%s-webhook-tls" (include "plinth.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}
{{- end }}
{{- define "plinth.webhookHosts" -}}
{{- $service := include "plinth.webhookService" . }}
{{- $ns := .Release.Namespace }}
{{- list $service (printf "%s.%s" $service $ns) (printf "%s.%s.svc" $service $ns) (printf "%s.%s.svc.cluster.local" $service $ns) | join "," }}
{{- end }}

{{/* chart label: name-version, with "+" (not allowed in label values) replaced. */}}
{{- define "plinth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "plinth.labels" -}}
helm.sh/chart: {{ include "plinth.chart" . }}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: plinth
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the release: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "plinth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plinth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of the operator pods (the component keeps the `helm test` pod out of the Service). */}}
{{- define "plinth.operatorSelectorLabels" -}}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "plinth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plinth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest pins it when set; the tag defaults to $default. */}}
{{- define "plinth.imageRef" -}}
{{- $image := index . 0 }}
{{- $default := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $default $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The operator image. */}}
{{- define "plinth.image" -}}
{{- include "plinth.imageRef" (list .Values.image .Chart.AppVersion) }}
{{- end }}

{{/* Name of the ClusterRole with the workload (namespaced) permissions. */}}
{{- define "plinth.workloadsRoleName" -}}
{{- printf "%s-workloads" (include "plinth.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Argo CD's health-check key for a Lua file in files/argocd: modeldeployment.lua (or plinth.dev_ModelDeployment.lua)
-> resource.customizations.health.plinth.dev_ModelDeployment.
*/}}
{{- define "plinth.argocdKind" -}}
{{- $kinds := dict "modeldeployment" "ModelDeployment" "previewenvironment" "PreviewEnvironment" "namespacequota" "NamespaceQuota" }}
{{- $base := base . | trimSuffix ".lua" | trimPrefix "plinth.dev_" | lower }}
{{- required (printf "files/argocd/%s: not a Plinth kind (expected one of %s)" (base .) (keys $kinds | sortAlpha | join ", ")) (get $kinds $base) }}
{{- end }}

{{/* The ClusterKopfPeering object the replicas meet in (peering.enabled): peering.name, else the full name. */}}
{{- define "plinth.peeringName" -}}
{{- default (include "plinth.fullname" .) .Values.peering.name }}
{{- end }}
