{{/* Names, labels, and the checks of values that the schema cannot express. */}}

{{- define "remote-executor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "remote-executor.fullname" -}}
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

{{- define "remote-executor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "remote-executor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remote-executor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "remote-executor.labels" -}}
helm.sh/chart: {{ include "remote-executor.chart" . }}
{{ include "remote-executor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "remote-executor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remote-executor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository[:tag]@digest: a digest pins the image whatever the tag. */}}
{{- define "remote-executor.image" -}}
{{- $repository := required "image.repository is required: build the image from the Dockerfile, push it to your registry and set image.repository to it" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- if .Values.image.tag }}
{{- printf "%s:%s@%s" $repository .Values.image.tag .Values.image.digest }}
{{- else }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- end }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "remote-executor.imagePullPolicy" -}}
{{- if .Values.image.pullPolicy }}
{{- .Values.image.pullPolicy }}
{{- else if .Values.image.digest }}
{{- "IfNotPresent" }}
{{- else }}
{{- "Always" }}
{{- end }}
{{- end }}

{{/* The queue's region, as the worker reads it (queue/sqs.py region_from_url), else aws.region. */}}
{{- define "remote-executor.queueRegion" -}}
{{- $pattern := "^https://(?:sqs\\.)?([a-z]{2}(?:-[a-z]+)+-[0-9])\\..*$" }}
{{- $url := .Values.queue.url | default "" }}
{{- if regexMatch $pattern $url }}
{{- regexReplaceAll $pattern $url "${1}" }}
{{- else }}
{{- .Values.aws.region }}
{{- end }}
{{- end }}

{{/* What the schema cannot say: relations between values. Each message names the values. */}}
{{- define "remote-executor.validate" -}}
{{- $drain := add .Values.worker.shutdownGraceSeconds .Values.worker.killGraceSeconds }}
{{- if le (int64 .Values.terminationGracePeriodSeconds) (int64 $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than worker.shutdownGraceSeconds + worker.killGraceSeconds (%d): Kubernetes would kill the worker before running tasks finish draining and their messages are handed back" (int64 .Values.terminationGracePeriodSeconds) (int64 $drain)) }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled }}
{{- fail "autoscaling.keda.enabled and autoscaling.hpa.enabled are both true: KEDA creates its own HorizontalPodAutoscaler, and two autoscalers on one Deployment fight; enable one" }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled (gt (int64 .Values.autoscaling.keda.minReplicaCount) (int64 .Values.autoscaling.keda.maxReplicaCount)) }}
{{- fail (printf "autoscaling.keda.minReplicaCount (%d) is above autoscaling.keda.maxReplicaCount (%d)" (int64 .Values.autoscaling.keda.minReplicaCount) (int64 .Values.autoscaling.keda.maxReplicaCount)) }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled (not (include "remote-executor.queueRegion" .)) }}
{{- fail "autoscaling.keda.enabled needs aws.region: queue.url names no region (https://sqs.<region>.amazonaws.com/...) for KEDA to call" }}
{{- end }}
{{- if .Values.autoscaling.hpa.enabled }}
{{- if gt (int64 .Values.autoscaling.hpa.minReplicas) (int64 .Values.autoscaling.hpa.maxReplicas) }}
{{- fail (printf "autoscaling.hpa.minReplicas (%d) is above autoscaling.hpa.maxReplicas (%d)" (int64 .Values.autoscaling.hpa.minReplicas) (int64 .Values.autoscaling.hpa.maxReplicas)) }}
{{- end }}
{{- if not (dig "requests" "cpu" "" .Values.resources) }}
{{- fail "autoscaling.hpa.enabled needs resources.requests.cpu: CPU utilisation is measured against the request" }}
{{- end }}
{{- if and .Values.autoscaling.hpa.targetMemoryUtilizationPercentage (not (dig "requests" "memory" "" .Values.resources)) }}
{{- fail "autoscaling.hpa.targetMemoryUtilizationPercentage needs resources.requests.memory: memory utilisation is measured against the request" }}
{{- end }}
{{- end }}
{{- $managed := include "remote-executor.managedEnvNames" . | fromJsonArray }}
{{- range $index, $variable := .Values.extraEnv }}
{{- if has $variable.name $managed }}
{{- fail (printf "extraEnv[%d].name: %s is set by the chart from its values (see README.md); set the value instead" $index $variable.name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The variables the chart sets itself, and their legacy aliases the worker also reads. */}}
{{- define "remote-executor.managedEnvNames" -}}
{{- list "DATAHUB_GMS_URL" "DATAHUB_BASE_URL" "DATAHUB_GMS_TOKEN" "DATAHUB_ACCESS_TOKEN" "EXECUTOR_QUEUE_URL" "AWS_COMMAND_QUEUE_URL" "AWS_REGION" "AWS_DEFAULT_REGION" "EXECUTOR_WORKER_ID" "EXECUTOR_MAX_CONCURRENT_TASKS" "EXECUTOR_SHUTDOWN_GRACE_SECONDS" "EXECUTOR_KILL_GRACE_SECONDS" "EXECUTOR_HEALTH_PORT" "EXECUTOR_LOG_FORMAT" "EXECUTOR_LOG_LEVEL" "EXECUTOR_SECRETS" "EXECUTOR_SECRETS_PREFIX" "EXECUTOR_SECRETS_DIR" "EXECUTOR_SECRET_SOURCES" | toJson }}
{{- end }}

{{/* EXECUTOR_SECRETS: NAME=ARN pairs joined by commas, in key order (range sorts map keys). */}}
{{- define "remote-executor.secretsMapping" -}}
{{- $pairs := list }}
{{- range $name, $ref := .Values.secrets.mapping }}
{{- $pairs = append $pairs (printf "%s=%s" $name $ref) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* The bridge's pods: the release's labels with component bridge, apart from the workers'. */}}
{{- define "remote-executor.bridgeSelectorLabels" -}}
app.kubernetes.io/name: {{ include "remote-executor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end }}

{{- define "remote-executor.bridgeLabels" -}}
helm.sh/chart: {{ include "remote-executor.chart" . }}
{{ include "remote-executor.bridgeSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* EXECUTOR_BRIDGE_QUEUES: bridge.queues as id=url pairs in key order, else the worker's. */}}
{{- define "remote-executor.bridgeQueues" -}}
{{- if .Values.bridge.queues }}
{{- $pairs := list }}
{{- range $id := keys .Values.bridge.queues | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $id (index $.Values.bridge.queues $id)) }}
{{- end }}
{{- join "," $pairs }}
{{- else }}
{{- printf "%s=%s" .Values.global.datahub.executor.worker_id (required "queue.url or bridge.queues is required for the bridge" .Values.queue.url) }}
{{- end }}
{{- end }}
