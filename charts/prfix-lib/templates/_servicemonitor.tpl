{{/* A Prometheus Operator ServiceMonitor for the metrics port (metrics.serviceMonitor.enabled;
needs the monitoring.coreos.com CRDs). Without it, Prometheus finds the pods by their
prometheus.io/* annotations. */}}
{{- define "prfix-lib.serviceMonitor" -}}
{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "prfix-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
    {{- with .Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "prfix-lib.selectorLabels" (dict "root" . "part" "") | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .Release.Namespace }}]
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ .Values.metrics.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.metrics.serviceMonitor.scrapeTimeout }}
{{- end -}}
{{- end -}}
