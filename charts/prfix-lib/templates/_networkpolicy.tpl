{{/*
NetworkPolicies. Each selects its pods for both directions, so whatever is not listed is refused:
  in   the service's port from `networkPolicy.from` (NetworkPolicy peers; [] admits anyone: the
       gateway, the public endpoint), the metrics port from `metrics.networkPolicy.from` only;
  out  DNS, the in-namespace services in `networkPolicy.calls` on their ports, and the stores in
       `networkPolicy.external` (Postgres, Redis, Ollama: their port to any address unless `to`
       narrows it to peers such as an ipBlock).
The migration Job and the backup CronJob get a policy of their own: no ingress, DNS and Postgres.
*/}}

{{/* Egress to the cluster DNS. */}}
{{- define "prfix-lib.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{/* Egress to one entry of networkPolicy.external ({name, port, to}). */}}
{{- define "prfix-lib.externalEgress" -}}
- ports:
    - protocol: TCP
      port: {{ .port }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Egress to Postgres alone: the `postgres` entry of networkPolicy.external. */}}
{{- define "prfix-lib.postgresEgress" -}}
{{- $found := false -}}
{{- range .Values.networkPolicy.external }}
{{- if eq .name "postgres" }}
{{- $found = true }}
{{ include "prfix-lib.externalEgress" . }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail "networkPolicy.external: no entry named postgres (the migration Job and backups need it)" }}
{{- end }}
{{- end -}}

{{- define "prfix-lib.networkPolicy" -}}
{{- if .Values.networkPolicy.enabled -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "prfix-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "prfix-lib.selectorLabels" (dict "root" . "part" "") | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports:
        - protocol: TCP
          port: {{ .Values.service.port }}
      {{- with .Values.networkPolicy.from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- if .Values.metrics.enabled }}
    - from:
        {{- toYaml .Values.metrics.networkPolicy.from | nindent 8 }}
      ports:
        - protocol: TCP
          port: {{ .Values.metrics.port }}
    {{- end }}
  egress:
    {{- include "prfix-lib.dnsEgress" . | nindent 4 }}
    {{- range .Values.networkPolicy.calls }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ .name }}
      ports:
        - protocol: TCP
          port: {{ .port }}
    {{- end }}
    {{- range .Values.networkPolicy.external }}
    {{- include "prfix-lib.externalEgress" . | nindent 4 }}
    {{- end }}
{{- end -}}
{{- end -}}

{{/* The policy of a one-off part (migrate, backup): no ingress; DNS and Postgres out.
dict "root" $ "part" "backup" "annotations" (dict ...) */}}
{{- define "prfix-lib.partNetworkPolicy" -}}
{{- if .root.Values.networkPolicy.enabled -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "prfix-lib.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" . | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  podSelector:
    matchLabels:
      {{- include "prfix-lib.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  egress:
    {{- include "prfix-lib.dnsEgress" .root | nindent 4 }}
    {{- include "prfix-lib.postgresEgress" .root | trim | nindent 4 }}
{{- end -}}
{{- end -}}
