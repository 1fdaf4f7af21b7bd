{{- define "kubenas.name" -}}{{ .Release.Name }}-operator{{- end -}}
{{- define "kubenas.labels" -}}
app.kubernetes.io/name: kubenas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
