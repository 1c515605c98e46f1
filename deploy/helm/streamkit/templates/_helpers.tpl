{{/* The release's name for its objects, cut to Kubernetes' 63 characters. */}}
{{- define "streamkit.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamkit.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamkit.labels" -}}
{{ include "streamkit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
streamkit.dev/group: {{ .Values.app.group | quote }}
{{- end -}}

{{/* SASL is on for the SASL_* protocols; TLS for SSL and SASL_SSL. */}}
{{- define "streamkit.sasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}
{{- define "streamkit.tls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/* Refuse values that cannot work, at render time, with the reason. */}}
{{- define "streamkit.validate" -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL" -}}
{{- if not (has .Values.kafka.securityProtocol $protocols) -}}
{{- fail (printf "kafka.securityProtocol %q is not one of %s" .Values.kafka.securityProtocol (join ", " $protocols)) -}}
{{- end -}}
{{- $mechanisms := list "SCRAM-SHA-512" "SCRAM-SHA-256" "PLAIN" -}}
{{- if and (include "streamkit.sasl" .) (not (has .Values.kafka.sasl.mechanism $mechanisms)) -}}
{{- fail (printf "kafka.sasl.mechanism %q is not one of %s" .Values.kafka.sasl.mechanism (join ", " $mechanisms)) -}}
{{- end -}}
{{- if and (include "streamkit.sasl" .) (not .Values.kafka.sasl.existingSecret) -}}
{{- fail "kafka.sasl.existingSecret: a SASL protocol needs the Secret holding the credentials" -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.maxReplicaCount) (int .Values.autoscaling.partitions) -}}
{{- fail (printf "autoscaling.maxReplicaCount %d exceeds the %d partitions of %s: a consumer group gives the extra members nothing" (int .Values.autoscaling.maxReplicaCount) (int .Values.autoscaling.partitions) .Values.autoscaling.topic) -}}
{{- end -}}
{{- if gt (int .Values.autoscaling.minReplicaCount) (int .Values.autoscaling.maxReplicaCount) -}}
{{- fail "autoscaling.minReplicaCount exceeds autoscaling.maxReplicaCount" -}}
{{- end -}}
{{- end -}}
{{- end -}}
