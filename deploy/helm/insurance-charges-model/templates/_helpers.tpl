{{- define "icm.name" -}}{{ .Chart.Name }}{{- end -}}

{{- define "icm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- /* The original manifests select pods by `app` alone. */ -}}
{{- define "icm.selectorLabels" -}}
app: {{ .Values.appLabel }}
{{- end -}}

{{- define "icm.labels" -}}
{{ include "icm.selectorLabels" . }}
app.kubernetes.io/name: {{ .Values.appLabel }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- /* What runs: the model's registry version, as the image's version label says. */}}
app.kubernetes.io/version: {{ .Values.model.version | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: model-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.model.version }}
insurance-pipeline/model-version: {{ . | quote }}
{{- end }}
{{- end -}}

{{- /* By digest when one is given (what the deploy path does: immutable), else by tag. */ -}}
{{- define "icm.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{- $tag := .Values.image.tag | default (printf "v%v" .Values.model.version) -}}
{{- if eq $tag "v" }}{{ fail "set image.tag or model.version (or image.digest)" }}{{ end -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}
