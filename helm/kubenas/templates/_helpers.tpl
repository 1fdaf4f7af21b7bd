{{- define "kubenas.name" -}}{{ .Release.Name }}-operator{{- end -}}

{{- define "kubenas.selectorLabels" -}}
app.kubernetes.io/name: kubenas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubenas.labels" -}}
app.kubernetes.io/name: kubenas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubenas.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubenas.leaseName" -}}
{{ .Values.leaderElection.id | default (printf "%s-kubenas" .Release.Name) }}
{{- end -}}

{{- define "kubenas.trialServiceAccount" -}}
{{ .Values.trialServiceAccount.name | default (printf "%s-trial" .Release.Name) }}
{{- end -}}

{{- /* Namespaces where experiments run and the chart creates the trial ServiceAccount (and the
checkpoint PVC): the watched ones, else trialServiceAccount.namespaces. A JSON list (fromJsonArray). */ -}}
{{- define "kubenas.trialNamespaces" -}}
{{- if .Values.trialServiceAccount.create -}}
{{ .Values.watchNamespaces | default .Values.trialServiceAccount.namespaces | uniq | toJson }}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{- /* The operator's --trial-defaults: values.trialDefaults, plus the trial ServiceAccount and the checkpoint
PVC where the chart creates them (an experiment's own trialTemplate still wins, in the operator). A JSON object. */ -}}
{{- define "kubenas.trialDefaults" -}}
{{- $defaults := deepCopy .Values.trialDefaults -}}
{{- if include "kubenas.trialNamespaces" . | fromJsonArray -}}
{{- if not (hasKey $defaults "serviceAccountName") -}}
{{- $_ := set $defaults "serviceAccountName" (include "kubenas.trialServiceAccount" .) -}}
{{- end -}}
{{- if and .Values.checkpoints.persistence.enabled (not (hasKey $defaults "checkpointVolume")) -}}
{{- $claim := dict "claimName" (printf "%s-checkpoints" .Release.Name) -}}
{{- $_ := set $defaults "checkpointVolume" (dict "persistentVolumeClaim" $claim) -}}
{{- end -}}
{{- end -}}
{{ toJson $defaults }}
{{- end -}}

{{- /* Where the `helm test` experiment runs: the first watched namespace, else the release's. */ -}}
{{- define "kubenas.testNamespace" -}}
{{ first (.Values.watchNamespaces | default list) | default .Release.Namespace }}
{{- end -}}
