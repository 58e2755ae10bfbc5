{{/* The service's ClusterIP Service: gRPC (h2c: HTTP/2 without TLS, or TLS by the service itself)
on service.port, and the metrics port for scrapers that go through Services. */}}
{{- define "prfix-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "prfix-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "prfix-lib.selectorLabels" (dict "root" . "part" "") | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .Values.service.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- if .Values.metrics.enabled }}
    - name: metrics
      port: {{ .Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end -}}

{{/* The service's identity. It never calls the Kubernetes API: no token is mounted. */}}
{{- define "prfix-lib.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "prfix-lib.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
{{- end -}}
