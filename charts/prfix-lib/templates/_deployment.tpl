{{/*
The service's Deployment. Rolling updates add a pod before removing one (maxUnavailable 0); the
autoscaler, when on, owns the replica count (so an upgrade does not reset it). Probes are gRPC
health (grpc.health.v1) on the service's own port: NOT_SERVING until the service is ready (start-up
applies pending migrations first, under an advisory lock, hence the patient startup probe) and
again while it drains at shutdown.
*/}}
{{- define "prfix-lib.deployment" -}}
{{- $service := include "prfix-lib.component" . -}}
{{- $prefix := printf "PRFIX_%s__" (upper $service) -}}
{{- $port := int .Values.service.port -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "prfix-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "prfix-lib.selectorLabels" (dict "root" . "part" "") | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "prfix-lib.labels" (dict "root" . "part" "") | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # A change of settings rolls the pods.
        checksum/settings: {{ toJson .Values.settings | sha256sum }}
        {{- if .Values.metrics.enabled }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.metrics.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "prfix-lib.serviceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      # drain_delay_ms + shutdown_grace_ms and a margin.
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "prfix-lib.podSecurityContext" . | nindent 8 }}
      {{- with include "prfix-lib.scheduling" . }}
      {{- . | trim | nindent 6 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.topologySpreadConstraints }}
      # Each constraint without a labelSelector spreads this release's pods.
      topologySpreadConstraints:
        {{- range . }}
        {{- $constraint := . }}
        {{- if not .labelSelector }}
        {{- $selector := dict "matchLabels" (include "prfix-lib.selectorLabels" (dict "root" $ "part" "") | fromYaml) }}
        {{- $constraint = merge (dict "labelSelector" $selector) . }}
        {{- end }}
        - {{ toYaml $constraint | nindent 10 | trim }}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ $service }}
          image: {{ include "prfix-lib.image" (dict "root" . "image" .Values.image) | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          ports:
            - name: grpc
              containerPort: {{ $port }}
              protocol: TCP
            {{- if .Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ .Values.metrics.port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "prfix-lib.fullname" . }}-settings
          env:
            - name: {{ $prefix }}LISTEN
              value: "0.0.0.0:{{ $port }}"
            {{- if .Values.metrics.enabled }}
            # /metrics on every address of the pod (the default is 127.0.0.1 only); the
            # NetworkPolicy admits the monitoring pods alone.
            - name: {{ $prefix }}ADMIN_LISTEN
              value: "0.0.0.0:{{ .Values.metrics.port }}"
            {{- end }}
            {{- include "prfix-lib.secretEnv" . | nindent 12 }}
          securityContext:
            {{- include "prfix-lib.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          startupProbe:
            grpc:
              port: {{ $port }}
            periodSeconds: 2
            failureThreshold: {{ .Values.probes.startupFailureThreshold }}
          readinessProbe:
            grpc:
              port: {{ $port }}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          livenessProbe:
            grpc:
              port: {{ $port }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          volumeMounts:
            {{- include "prfix-lib.tmpMount" . | nindent 12 }}
            {{- with include "prfix-lib.secretMount" . }}
            {{- . | trim | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "prfix-lib.tmpVolume" (dict "sizeLimit" .Values.tmpSizeLimit) | nindent 8 }}
        {{- with include "prfix-lib.secretVolume" . }}
        {{- . | trim | nindent 8 }}
        {{- end }}
{{- end -}}
