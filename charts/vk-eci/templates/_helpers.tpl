{{/* Names and labels shared by every template. */}}

{{- define "vk-eci.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vk-eci.fullname" -}}
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

{{- define "vk-eci.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vk-eci.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vk-eci.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vk-eci.labels" -}}
helm.sh/chart: {{ include "vk-eci.chart" . }}
{{ include "vk-eci.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vk-eci.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vk-eci.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vk-eci.credentialsSecretName" -}}
{{- default (printf "%s-credentials" (include "vk-eci.fullname" .)) .Values.credentials.secret.name }}
{{- end }}

{{- define "vk-eci.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The nodes of this release (values.yaml "nodes"): each a dict of name, fullname (its
Deployment and leader Lease) and values (.Values with the node's name, zone, vSwitches and
overrides), as JSON; without "nodes", the one node of .Values.node under the release's names.
*/}}
{{- define "vk-eci.nodes" -}}
{{- $out := list }}
{{- if .Values.nodes }}
{{- $base := include "vk-eci.fullname" . }}
{{- $sa := include "vk-eci.serviceAccountName" . }}
{{- $secret := include "vk-eci.credentialsSecretName" . }}
{{- range .Values.nodes }}
{{- $full := printf "%s-%s" $base .name | trunc 63 | trimSuffix "-" }}
{{- $values := deepCopy $.Values }}
{{- $own := dict "node" (dict "name" .name) "eci" (dict "zone" (.zone | default "") "vswitches" (.vswitches | default $.Values.eci.vswitches)) "fullnameOverride" $full "serviceAccount" (dict "name" $sa) "credentials" (dict "secret" (dict "name" $secret)) }}
{{- $values = mergeOverwrite $values (deepCopy (.overrides | default dict)) $own }}
{{- $out = append $out (dict "name" .name "fullname" $full "values" $values) }}
{{- end }}
{{- else }}
{{- $out = list (dict "name" .Values.node.name "fullname" (include "vk-eci.fullname" .) "values" .Values) }}
{{- end }}
{{- toJson $out }}
{{- end }}
