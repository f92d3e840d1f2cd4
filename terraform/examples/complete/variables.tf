variable "region" {
  description = "Region of the platform (key table, functions, queues, playback bucket)."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "customer_region" {
  description = "Region of the customer's KMS key; null uses region. Keep it close to the platform: every KEK unwrap is a call to it."
  type        = string
  default     = null

  validation {
    condition     = var.customer_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.customer_region))
    error_message = "customer_region must be an AWS region name such as eu-west-1, or null."
  }
}

variable "customer_role_arn" {
  description = "Role in the customer's account to assume for the customer-key module; null applies it with the same credentials as the platform (one account, for a trial)."
  type        = string
  default     = null

  validation {
    condition     = var.customer_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.customer_role_arn))
    error_message = "customer_role_arn must be an IAM role ARN or null."
  }
}

variable "name_prefix" {
  description = "Prefix of the platform's resource names."
  type        = string
  default     = "kmsbridge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2 to 22 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "org_ids" {
  description = "The customer's kmsbridge org ids."
  type        = list(string)
  default     = ["example-org"]

  validation {
    condition     = length(var.org_ids) > 0 && alltrue([for org in var.org_ids : can(regex("^[A-Za-z0-9._-]{1,64}$", org))])
    error_message = "org_ids must be a non-empty list of ids matching ^[A-Za-z0-9._-]{1,64}$."
  }
}

variable "access_mode" {
  description = "How the platform reaches the customer's key: \"key_policy\" or \"grants\"."
  type        = string
  default     = "key_policy"

  validation {
    condition     = contains(["key_policy", "grants"], var.access_mode)
    error_message = "access_mode must be \"key_policy\" or \"grants\"."
  }
}

variable "revoked_kek_ids" {
  description = "KEK ids whose recordings must not play; add a Deny (the value `kmsbridge access revoke-window` prints)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for kek in var.revoked_kek_ids : can(regex("^[0-9a-f]{64}$", kek))])
    error_message = "Each revoked KEK id must be 64 lowercase hex characters."
  }
}

variable "export_to_customer_key" {
  description = "Let bulk export encrypt to the customer's key: the jobs role may kms:GenerateDataKey on it with kmsbridge:purpose = export for these orgs (both modules)."
  type        = bool
  default     = false
}

variable "operator_trusted_principal_arns" {
  description = "Who may assume the operator role that runs `kmsbridge org add` (IAM role or user ARNs); empty: any principal of the platform account allowed by its own IAM policy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|(role|user)/[A-Za-z0-9+=,.@_/-]{1,512})$", arn))])
    error_message = "Each trusted principal must be an IAM root, role or user ARN."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic for the platform's alarms; null creates one."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN or null."
  }
}

variable "playback_role_arns" {
  description = "IAM roles of the playback services that may invoke the decryptor."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.playback_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", arn))])
    error_message = "Each playback role must be an IAM role ARN."
  }
}

variable "recording_bucket_arns" {
  description = "S3 buckets holding the encrypted recordings (arn:aws:s3:::<bucket>)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.recording_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "Each recording bucket must be an S3 bucket ARN."
  }
}

variable "decryptor_zip_path" {
  description = "decryptor.zip from `kmsbridge lambda build -o dist/`, relative to this directory."
  type        = string
  default     = "../../../dist/decryptor.zip"

  validation {
    condition     = endswith(var.decryptor_zip_path, ".zip")
    error_message = "decryptor_zip_path must name a .zip file."
  }
}

variable "rotation_zip_path" {
  description = "rotation.zip from `kmsbridge lambda build -o dist/`, relative to this directory."
  type        = string
  default     = "../../../dist/rotation.zip"

  validation {
    condition     = endswith(var.rotation_zip_path, ".zip")
    error_message = "rotation_zip_path must name a .zip file."
  }
}

variable "jobs_zip_path" {
  description = "jobs.zip from `kmsbridge lambda build -o dist/`, relative to this directory."
  type        = string
  default     = "../../../dist/jobs.zip"

  validation {
    condition     = endswith(var.jobs_zip_path, ".zip")
    error_message = "jobs_zip_path must name a .zip file."
  }
}

variable "tags" {
  description = "Tags for every resource of both modules."
  type        = map(string)
  default     = { Project = "kmsbridge" }
}
