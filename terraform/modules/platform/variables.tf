################################################################################
# General
################################################################################

variable "name_prefix" {
  description = "Prefix of every resource name (functions, roles, queues, log groups, bucket). The platform roles are named <name_prefix>-decryptor, -rotation and -jobs, so customers can name them in their key policy before the first apply."
  type        = string
  default     = "kmsbridge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2 to 22 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (it is part of an S3 bucket name)."
  }
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "iam_role_permissions_boundary" {
  description = "ARN of a managed policy to set as the permissions boundary of every role the module creates; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.iam_role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/[A-Za-z0-9+=,.@_/-]{1,512}$", var.iam_role_permissions_boundary))
    error_message = "iam_role_permissions_boundary must be an IAM policy ARN or null."
  }
}

################################################################################
# Orgs and their customer keys
################################################################################

variable "orgs" {
  description = "The orgs this platform serves: org id => ARNs of that org's customer KMS keys (several ARNs for multi-Region replicas; any one can unwrap). The roles may use only these keys, and only with kmsbridge:org equal to one of these org ids. Empty: the roles exist (so customers can name them in their key policies) but can use no key and read no table item yet."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for org in keys(var.orgs) : can(regex("^[A-Za-z0-9._-]{1,64}$", org))])
    error_message = "Each org id must match ^[A-Za-z0-9._-]{1,64}$."
  }

  validation {
    condition     = alltrue([for arns in values(var.orgs) : length(arns) > 0])
    error_message = "Each org must list at least one customer KMS key ARN."
  }

  validation {
    condition = alltrue(flatten([
      for arns in values(var.orgs) : [
        for arn in arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", arn))
      ]
    ]))
    error_message = "Each customer key must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>); aliases do not authorise key use."
  }
}

variable "max_age_seconds" {
  description = "KMSBRIDGE_MAX_AGE_SECONDS: how long, in seconds, the decryptor and jobs functions keep an unwrapped KEK (0 to 3600; 0 disables the cache). It bounds how long playback continues after a customer revokes access."
  type        = number
  default     = 60

  validation {
    condition     = var.max_age_seconds >= 0 && var.max_age_seconds <= 3600 && floor(var.max_age_seconds) == var.max_age_seconds
    error_message = "max_age_seconds must be a whole number from 0 to 3600."
  }
}

################################################################################
# Key table
################################################################################

variable "table_name" {
  description = "Name of the DynamoDB key table (KMSBRIDGE_TABLE)."
  type        = string
  default     = "kmsbridge-keks"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 characters of letters, digits, underscore, hyphen and dot."
  }
}

variable "table_kms_key_arn" {
  description = "ARN of a KMS key of the platform account for the table's server-side encryption; null uses the AWS managed key aws/dynamodb. The table holds public keys and KEK private keys already wrapped under the customers' keys."
  type        = string
  default     = null

  validation {
    condition     = var.table_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.table_kms_key_arn))
    error_message = "table_kms_key_arn must be a KMS key ARN or null."
  }
}

################################################################################
# Lambda functions
################################################################################

variable "decryptor_zip_path" {
  description = "Path of decryptor.zip, as made by `kmsbridge lambda build -o dist/`."
  type        = string

  validation {
    condition     = endswith(var.decryptor_zip_path, ".zip")
    error_message = "decryptor_zip_path must name a .zip file."
  }
}

variable "rotation_zip_path" {
  description = "Path of rotation.zip, as made by `kmsbridge lambda build -o dist/`."
  type        = string

  validation {
    condition     = endswith(var.rotation_zip_path, ".zip")
    error_message = "rotation_zip_path must name a .zip file."
  }
}

variable "jobs_zip_path" {
  description = "Path of jobs.zip, as made by `kmsbridge lambda build -o dist/`."
  type        = string

  validation {
    condition     = endswith(var.jobs_zip_path, ".zip")
    error_message = "jobs_zip_path must name a .zip file."
  }
}

variable "architecture" {
  description = "Instruction set of the functions: x86_64 or arm64. The zips must be built for it (`kmsbridge lambda build --architecture arm64`): they contain compiled wheels of cryptography."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "log_level" {
  description = "Lambda's application log level for the functions (logging_config.application_log_level): the level of the Python root logger, so of kmsbridge's diagnostic messages. Audit lines and metrics are written without a level and are never filtered."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARN or ERROR."
  }
}

variable "code_signing_config_arn" {
  description = "ARN of a Lambda code signing configuration to enforce on every function; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.code_signing_config_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:code-signing-config:csc-[a-z0-9]{17}$", var.code_signing_config_arn))
    error_message = "code_signing_config_arn must be a Lambda code signing configuration ARN or null."
  }
}

variable "decryptor_memory_size" {
  description = "Memory of the decryptor function, in MB (128 to 10240). CPU grows with memory; RSA-3072 unwraps are CPU-bound."
  type        = number
  default     = 1024

  validation {
    condition     = var.decryptor_memory_size >= 128 && var.decryptor_memory_size <= 10240 && floor(var.decryptor_memory_size) == var.decryptor_memory_size
    error_message = "decryptor_memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "decryptor_timeout" {
  description = "Timeout of the decryptor function, in seconds (1 to 900). The decrypt op streams a whole recording into the playback bucket."
  type        = number
  default     = 60

  validation {
    condition     = var.decryptor_timeout >= 1 && var.decryptor_timeout <= 900 && floor(var.decryptor_timeout) == var.decryptor_timeout
    error_message = "decryptor_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "decryptor_reserved_concurrency" {
  description = "Reserved concurrency of the decryptor (1 to 1000), or null for none: the most containers that run at once, each with its own KEK cache, so it also bounds KMS calls (at most N calls per busy org per max_age_seconds). Default from the KMS-call benchmark; see the module README, section \"Reserved concurrency\", for the account quota rule."
  type        = number
  default     = 10

  validation {
    condition     = var.decryptor_reserved_concurrency == null || try(var.decryptor_reserved_concurrency >= 1 && var.decryptor_reserved_concurrency <= 1000 && floor(var.decryptor_reserved_concurrency) == var.decryptor_reserved_concurrency, false)
    error_message = "decryptor_reserved_concurrency must be a whole number from 1 to 1000, or null."
  }
}

variable "decryptor_snapstart" {
  description = "Lambda SnapStart for the decryptor (published versions): a cold start restores a snapshot taken after the handler module was imported, instead of importing it again. Restores are billed per GB; the cache holds no key in the snapshot (it is filled on the first request)."
  type        = bool
  default     = true
}

variable "decryptor_alias_name" {
  description = "Name of the decryptor's alias, pointing at the latest published version: what the playback services invoke (decryptor_invoke_arn)."
  type        = string
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,127}$", var.decryptor_alias_name))
    error_message = "decryptor_alias_name must be 1 to 128 letters, digits, hyphens and underscores, starting with a letter."
  }
}

variable "decryptor_require_sealed" {
  description = "KMSBRIDGE_REQUIRE_SEALED=1 on the decryptor: an unwrap request without a response_key is refused, so no data key leaves the function unsealed. false only for callers that cannot seal yet."
  type        = bool
  default     = true
}

variable "rotation_memory_size" {
  description = "Memory of the rotation function, in MB (128 to 10240). It generates RSA-3072 key pairs."
  type        = number
  default     = 512

  validation {
    condition     = var.rotation_memory_size >= 128 && var.rotation_memory_size <= 10240 && floor(var.rotation_memory_size) == var.rotation_memory_size
    error_message = "rotation_memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "rotation_timeout" {
  description = "Timeout of the rotation function, in seconds (1 to 900)."
  type        = number
  default     = 300

  validation {
    condition     = var.rotation_timeout >= 1 && var.rotation_timeout <= 900 && floor(var.rotation_timeout) == var.rotation_timeout
    error_message = "rotation_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "rotation_reserved_concurrency" {
  description = "Reserved concurrency of the rotation function: 1 (one run at a time; conditional puts also guard an org's active KEK), or null for no reservation on accounts with a low concurrency quota."
  type        = number
  default     = 1

  validation {
    condition     = var.rotation_reserved_concurrency == null || try(var.rotation_reserved_concurrency == 1, false)
    error_message = "rotation_reserved_concurrency must be 1 or null."
  }
}

variable "access_canary_schedule_expression" {
  description = "EventBridge Scheduler expression of the access canary, rate(...) or cron(...); null for no canary and no access alarms. Each run unwraps every served org's live KEKs through KMS, records the org's last access error in its settings item and emits OrgAccessRevoked / OrgAccessUnavailable; keep it at most hourly, the access alarms' period."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = var.access_canary_schedule_expression == null || can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours)\\)|cron\\([^)]+\\))$", var.access_canary_schedule_expression))
    error_message = "access_canary_schedule_expression must be rate(<n> minutes|hours), cron(<fields>) or null."
  }
}

variable "playback_sweep_schedule_expression" {
  description = "EventBridge Scheduler expression of the playback sweep, rate(...) or cron(...); null for none (then expired playback copies go with the daily rotation run and the bucket's one-day lifecycle rule). A plaintext copy outlives its pre-signed URL by at most this period."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = var.playback_sweep_schedule_expression == null || can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours)\\)|cron\\([^)]+\\))$", var.playback_sweep_schedule_expression))
    error_message = "playback_sweep_schedule_expression must be rate(<n> minutes|hours), cron(<fields>) or null."
  }
}

variable "rotation_schedule_expression" {
  description = "EventBridge Scheduler expression that runs KEK rotation, rate(...) or cron(...). Each run rotates the orgs whose active KEK is older than their cryptoperiod."
  type        = string
  default     = "rate(1 day)"

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\([^)]+\\))$", var.rotation_schedule_expression))
    error_message = "rotation_schedule_expression must be rate(<n> <unit>) or cron(<fields>)."
  }
}

variable "rotation_schedule_timezone" {
  description = "IANA time zone of rotation_schedule_expression (matters for cron expressions)."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.rotation_schedule_timezone))
    error_message = "rotation_schedule_timezone must be an IANA time zone name such as UTC or Europe/Paris."
  }
}

variable "jobs_memory_size" {
  description = "Memory of the jobs function (bulk rewrap and export), in MB (128 to 10240)."
  type        = number
  default     = 1024

  validation {
    condition     = var.jobs_memory_size >= 128 && var.jobs_memory_size <= 10240 && floor(var.jobs_memory_size) == var.jobs_memory_size
    error_message = "jobs_memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "jobs_timeout" {
  description = "Timeout of the jobs function, in seconds (1 to 900). The queue's visibility timeout is six times this."
  type        = number
  default     = 300

  validation {
    condition     = var.jobs_timeout >= 1 && var.jobs_timeout <= 900 && floor(var.jobs_timeout) == var.jobs_timeout
    error_message = "jobs_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "jobs_reserved_concurrency" {
  description = "Reserved concurrency of the jobs function (1 to 1000), or null for none: caps the KMS and S3 load a bulk job puts on the account. Must be at least jobs_maximum_concurrency when set."
  type        = number
  default     = 5

  validation {
    condition     = var.jobs_reserved_concurrency == null || try(var.jobs_reserved_concurrency >= 1 && var.jobs_reserved_concurrency <= 1000 && floor(var.jobs_reserved_concurrency) == var.jobs_reserved_concurrency, false)
    error_message = "jobs_reserved_concurrency must be a whole number from 1 to 1000, or null."
  }

  validation {
    condition     = var.jobs_reserved_concurrency == null || try(var.jobs_reserved_concurrency >= var.jobs_maximum_concurrency, false)
    error_message = "jobs_reserved_concurrency must be at least jobs_maximum_concurrency: more pollers than containers would throttle batches into the dead-letter queue."
  }
}

variable "jobs_maximum_concurrency" {
  description = "Maximum concurrency of the jobs queue's event source mapping (2 to 1000): how many batches run at once."
  type        = number
  default     = 5

  validation {
    condition     = var.jobs_maximum_concurrency >= 2 && var.jobs_maximum_concurrency <= 1000 && floor(var.jobs_maximum_concurrency) == var.jobs_maximum_concurrency
    error_message = "jobs_maximum_concurrency must be a whole number from 2 to 1000 (an SQS event source needs at least 2)."
  }
}

variable "jobs_batch_size" {
  description = "Messages per jobs invocation (1 to 10). Failed messages are reported one by one (ReportBatchItemFailures)."
  type        = number
  default     = 10

  validation {
    condition     = var.jobs_batch_size >= 1 && var.jobs_batch_size <= 10 && floor(var.jobs_batch_size) == var.jobs_batch_size
    error_message = "jobs_batch_size must be a whole number from 1 to 10."
  }
}

variable "jobs_max_receive_count" {
  description = "Receives of a job message before it moves to the dead-letter queue (1 to 1000)."
  type        = number
  default     = 5

  validation {
    condition     = var.jobs_max_receive_count >= 1 && var.jobs_max_receive_count <= 1000 && floor(var.jobs_max_receive_count) == var.jobs_max_receive_count
    error_message = "jobs_max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "jobs_message_retention_seconds" {
  description = "How long the jobs queue keeps a message, in seconds (60 to 604800, 7 days). A message moved to the dead-letter queue keeps its first enqueue time and the dead-letter queue keeps messages 14 days, so a failed job waits there at least 7 days."
  type        = number
  default     = 345600

  validation {
    condition     = var.jobs_message_retention_seconds >= 60 && var.jobs_message_retention_seconds <= 604800 && floor(var.jobs_message_retention_seconds) == var.jobs_message_retention_seconds
    error_message = "jobs_message_retention_seconds must be a whole number from 60 to 604800 (at most half the dead-letter queue's 14 days)."
  }
}

################################################################################
# Logs
################################################################################

variable "log_retention_in_days" {
  description = "Retention of the functions' log groups, in days; one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_kms_key_arn" {
  description = "ARN of a KMS key of the platform account to encrypt the log groups; null uses CloudWatch Logs' own encryption. The key policy must allow the logs service principal of this region."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN or null."
  }
}

################################################################################
# Who may call, what may be read and written
################################################################################

variable "playback_role_arns" {
  description = "ARNs of the playback services' IAM roles that may invoke the decryptor (lambda:InvokeFunction through the function's resource policy)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.playback_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", arn))])
    error_message = "Each playback role must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "recording_bucket_arns" {
  description = "ARNs of the S3 buckets holding encrypted recordings (arn:aws:s3:::<bucket>). The decryptor and jobs functions may s3:GetObject in them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.recording_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "Each recording bucket must be an S3 bucket ARN (arn:aws:s3:::<bucket>)."
  }
}

variable "export_bucket_arn" {
  description = "ARN of the S3 bucket that receives bulk exports (KMSBRIDGE_EXPORT_BUCKET; archives encrypted to the recipient's certificate). null: no export destination, the jobs function does rewraps only."
  type        = string
  default     = null

  validation {
    condition     = var.export_bucket_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.export_bucket_arn))
    error_message = "export_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::<bucket>) or null."
  }
}

variable "playback_bucket_name" {
  description = "Name of the bucket for short-lived plaintext playback copies (KMSBRIDGE_PLAYBACK_BUCKET); null makes <name_prefix>-playback-<account id>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.playback_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.playback_bucket_name))
    error_message = "playback_bucket_name must be a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens) or null."
  }
}

variable "playback_access_log_bucket" {
  description = "Name of an existing bucket for S3 server access logs of the playback bucket (who fetched which plaintext copy); null for none."
  type        = string
  default     = null

  validation {
    condition     = var.playback_access_log_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.playback_access_log_bucket))
    error_message = "playback_access_log_bucket must be a valid S3 bucket name or null."
  }
}

################################################################################
# Runtime
################################################################################

variable "lambda_runtime" {
  description = "Lambda runtime of every function. python3.11 was deprecated by AWS Lambda on 2026-06-30; the zips must be built for the same Python (`kmsbridge lambda build --python-version 3.13`), as they contain compiled wheels."
  type        = string
  default     = "python3.13"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13 (python3.11 is deprecated)."
  }
}

################################################################################
# Export to the customers' KMS keys
################################################################################

variable "export_kms_key_arns" {
  description = "Per org, the customer KMS keys that bulk export may encrypt to (org id => key ARNs): the jobs role may kms:GenerateDataKey on them with that org id and kmsbridge:purpose = export only. The org must also register the key as an export recipient (`kmsbridge export recipients add`), and the key's policy must allow it (customer-key module, export_enabled)."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for org in keys(var.export_kms_key_arns) : contains(keys(var.orgs), org)])
    error_message = "Each org of export_kms_key_arns must be a served org (a key of orgs)."
  }

  validation {
    condition = alltrue(flatten([
      for arns in values(var.export_kms_key_arns) : [
        for arn in arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", arn))
      ]
    ]))
    error_message = "Each export key must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)."
  }
}

################################################################################
# Operator role
################################################################################

variable "create_operator_role" {
  description = "Create the operator role <name_prefix>-operator with operator_policy_json attached: the role that runs `kmsbridge org add`, `kek import`, `kek rewrap` and submits jobs. false: give operator_role_arn and attach operator_policy_json to it yourself."
  type        = bool
  default     = true
}

variable "operator_role_arn" {
  description = "ARN of an existing operator role, when create_operator_role is false. The jobs queue accepts messages from this role only."
  type        = string
  default     = null

  validation {
    condition     = var.operator_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.operator_role_arn))
    error_message = "operator_role_arn must be an IAM role ARN or null."
  }

  validation {
    condition     = var.create_operator_role || var.operator_role_arn != null
    error_message = "Set operator_role_arn when create_operator_role is false: someone must be able to onboard orgs and submit jobs."
  }
}

variable "operator_trusted_principal_arns" {
  description = "Principals that may assume the created operator role (IAM role or user ARNs, e.g. an SSO permission set's role). Empty: the platform account, so any of its principals whose own IAM policy allows sts:AssumeRole on the role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|(role|user)/[A-Za-z0-9+=,.@_/-]{1,512})$", arn))])
    error_message = "Each trusted principal must be an IAM root, role or user ARN."
  }
}

################################################################################
# Genesys Cloud LKM endpoint
################################################################################

variable "create_lkm" {
  description = "Create the Genesys Cloud LKM endpoint: the lkm function (lkm_zip_path), its role, a Hawk nonce table with TTL, and an HTTP API in front of it."
  type        = bool
  default     = false
}

variable "lkm_zip_path" {
  description = "Path of lkm.zip, as made by `kmsbridge lambda build -o dist/`; required with create_lkm."
  type        = string
  default     = null

  validation {
    condition     = var.lkm_zip_path == null || try(endswith(var.lkm_zip_path, ".zip"), false)
    error_message = "lkm_zip_path must name a .zip file."
  }

  validation {
    condition     = !var.create_lkm || var.lkm_zip_path != null
    error_message = "create_lkm needs lkm_zip_path."
  }
}

variable "lkm_org_ids" {
  description = "Orgs the LKM endpoint serves (a subset of orgs); null: every served org. Its role may use only these orgs' keys, with the same per-org pairing as the other roles."
  type        = list(string)
  default     = null

  validation {
    condition     = var.lkm_org_ids == null || try(alltrue([for org in var.lkm_org_ids : contains(keys(var.orgs), org)]), false)
    error_message = "Each of lkm_org_ids must be a served org (a key of orgs)."
  }
}

variable "lkm_allowed_cidrs" {
  description = "Source address ranges (CIDR) the LKM endpoint answers: Genesys Cloud's published egress ranges of your region (GET /api/v2/ipranges). The function refuses other sources before Hawk (KMSBRIDGE_LKM_ALLOWED_CIDRS). At least one with create_lkm."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.lkm_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Each of lkm_allowed_cidrs must be a CIDR block such as 52.0.0.0/16."
  }

  validation {
    condition     = !var.create_lkm || length(var.lkm_allowed_cidrs) > 0
    error_message = "create_lkm needs at least one lkm_allowed_cidrs range (Genesys Cloud's egress ranges)."
  }
}

variable "lkm_reserved_concurrency" {
  description = "Reserved concurrency of the LKM function (1 to 1000), or null for none."
  type        = number
  default     = null

  validation {
    condition     = var.lkm_reserved_concurrency == null || try(var.lkm_reserved_concurrency >= 1 && var.lkm_reserved_concurrency <= 1000 && floor(var.lkm_reserved_concurrency) == var.lkm_reserved_concurrency, false)
    error_message = "lkm_reserved_concurrency must be a whole number from 1 to 1000, or null."
  }
}

################################################################################
# Platform CA
################################################################################

variable "create_platform_ca_key" {
  description = "Create the platform CA key (ECC_NIST_P384, SIGN_VERIFY, alias alias/<name_prefix>-platform-ca) that signs KEK certificates; only the operator and rotation roles may kms:Sign with it. Protected by prevent_destroy."
  type        = bool
  default     = true
}

################################################################################
# Alarms
################################################################################

variable "create_alarms" {
  description = "Create the CloudWatch alarms (output alarms says what each means): access revoked or unavailable (from the access canary), decryptor and rotation errors, messages in either dead-letter queue."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "ARN of an SNS topic for alarm and OK notifications; null creates <name_prefix>-alarms (subscribe to it yourself)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN or null."
  }
}
