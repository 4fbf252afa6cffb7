{{/* Names, labels and the pieces the Deployment and the migration Job share. */}}

{{- define "opsbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "opsbot.fullname" -}}
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

{{- define "opsbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "opsbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "opsbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opsbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server pods: the migration Job's pods must never match these (no Service traffic, no PDB count). */}}
{{- define "opsbot.serverSelectorLabels" -}}
{{ include "opsbot.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "opsbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "opsbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "opsbot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "opsbot.configMapName" -}}
{{- default (printf "%s-config" (include "opsbot.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{- define "opsbot.runbooksConfigMapName" -}}
{{- default (printf "%s-runbooks" (include "opsbot.fullname" .)) .Values.runbooks.existingConfigMap }}
{{- end }}

{{/* True (non-empty) when runbooks come from a ConfigMap rather than the image. */}}
{{- define "opsbot.customRunbooks" -}}
{{- if or .Values.runbooks.existingConfigMap .Values.runbooks.files }}true{{ end }}
{{- end }}

{{/* Refuse values that would deploy something broken or insecure, with a sentence saying what to set. */}}
{{- define "opsbot.validate" -}}
{{- if not .Values.slack.existingSecret }}
{{- fail "slack.existingSecret is empty: create a Secret with the Slack credentials (see values.yaml) and name it here" }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- fail "database.existingSecret is empty: create a Secret with OPSBOT_DATABASE_URL (a PostgreSQL URL) and name it here" }}
{{- end }}
{{- if and (not .Values.config.opsbotYaml) (not .Values.config.existingConfigMap) }}
{{- fail "no opsbot.yaml: pass it with --set-file config.opsbotYaml=opsbot.yaml, or name a ConfigMap in config.existingConfigMap" }}
{{- end }}
{{- if and .Values.config.opsbotYaml .Values.config.existingConfigMap }}
{{- fail "set config.opsbotYaml or config.existingConfigMap, not both" }}
{{- end }}
{{- if and .Values.runbooks.files .Values.runbooks.existingConfigMap }}
{{- fail "set runbooks.files or runbooks.existingConfigMap, not both" }}
{{- end }}
{{- if and .Values.ingress.enabled (eq .Values.slackMode "socket") }}
{{- fail "ingress.enabled with slackMode socket: Socket Mode needs no public URL; disable the Ingress" }}
{{- end }}
{{- if and .Values.rbac.create .Values.rbac.clusterWide (or .Values.rbac.namespaces .Values.rbac.targets) }}
{{- fail "rbac.clusterWide and rbac.namespaces (or rbac.targets) both set: choose a ClusterRole or Roles in the listed namespaces" }}
{{- end }}
{{- if and .Values.rbac.create .Values.rbac.targets .Values.rbac.namespaces }}
{{- fail "rbac.targets and rbac.namespaces both set: targets (from `opsbot rbac --format values`) already name every namespace" }}
{{- end }}
{{- end }}

{{/* Pod-level security context: shared by the Deployment and the migration Job. */}}
{{- define "opsbot.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security context: nothing but the user's own files, read-only root. */}}
{{- define "opsbot.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The database URL Secret as a volume; $secret and $key name it. */}}
{{- define "opsbot.databaseVolume" -}}
- name: database
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      - key: {{ .key }}
        path: url
{{- end }}
