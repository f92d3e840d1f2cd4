################################################################################
# Organisations and the platform
################################################################################

variable "org_ids" {
  description = "kmsbridge org ids whose KEKs this key wraps. The platform may use the key only with kmsbridge:org in the encryption context equal to one of them."
  type        = list(string)

  validation {
    condition     = length(var.org_ids) > 0
    error_message = "org_ids must name at least one org."
  }

  validation {
    condition     = alltrue([for org in var.org_ids : can(regex("^[A-Za-z0-9._-]{1,64}$", org))])
    error_message = "Each org id must match ^[A-Za-z0-9._-]{1,64}$."
  }
}

variable "platform_account_id" {
  description = "AWS account id (12 digits) of the kmsbridge platform. Every platform statement names its root as principal, with aws:PrincipalArn equal to one platform role and kms:CallerAccount equal to this account."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.platform_account_id))
    error_message = "platform_account_id must be a 12-digit AWS account id."
  }
}

variable "decryptor_role_arn" {
  description = "ARN of the platform's decryptor Lambda role (output decryptor_role_arn of the platform module). It may only kms:Decrypt. The role need not exist yet: the policy names it in an aws:PrincipalArn condition."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.decryptor_role_arn))
    error_message = "decryptor_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "rotation_role_arn" {
  description = "ARN of the platform's KEK rotation Lambda role (output rotation_role_arn of the platform module). It may kms:GenerateDataKey, kms:Encrypt and kms:Decrypt (to verify a new wrapped KEK before storing it)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.rotation_role_arn))
    error_message = "rotation_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "jobs_role_arn" {
  description = "ARN of the platform's bulk rewrap and export Lambda role (output jobs_role_arn of the platform module). It may kms:Decrypt, kms:Encrypt and kms:GenerateDataKey."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.jobs_role_arn))
    error_message = "jobs_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "operator_role_arns" {
  description = "ARNs of the platform's operator roles (output operator_role_arn of the platform module) that run `kmsbridge org add`, `kek import` and `kek rewrap`: they wrap a first or imported KEK and unwrap it once to verify it. Without one, onboarding an org is denied."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", arn))])
    error_message = "Each operator role ARN must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "lkm_role_arn" {
  description = "ARN of the platform's Genesys Cloud LKM endpoint role (output lkm_role_arn of the platform module, when it creates the endpoint); null for none. It wraps the KEKs behind LKM key pairs and unwraps them to decrypt."
  type        = string
  default     = null

  validation {
    condition     = var.lkm_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.lkm_role_arn))
    error_message = "lkm_role_arn must be an IAM role ARN or null."
  }
}

variable "export_enabled" {
  description = "Whether the platform's jobs role may export recordings of org_ids to this key: kms:GenerateDataKey with kmsbridge:purpose = export (statement PlatformJobsExportToThisKey). Exports also need the key registered as an export recipient of the org."
  type        = bool
  default     = false
}

################################################################################
# Access mode and revocation
################################################################################

variable "access_mode" {
  description = "How the platform roles get access: \"key_policy\" (one key policy statement per role) or \"grants\" (one KMS grant per role and org, constrained to that org's encryption context; revoking a grant is the revocation lever)."
  type        = string
  default     = "key_policy"

  validation {
    condition     = contains(["key_policy", "grants"], var.access_mode)
    error_message = "access_mode must be \"key_policy\" or \"grants\"."
  }
}

variable "platform_access_enabled" {
  description = "Whether the platform roles may use the key at all. Set to false and apply to revoke access durably: the platform statements and grants are removed, and a later apply does not bring them back."
  type        = bool
  default     = true
}

variable "revoked_kek_ids" {
  description = "KEK ids whose recordings must not play; add a Deny. Adds statement DenyDecryptRevokedKekPeriods (kms:Decrypt denied to every principal when kmsbridge:kek is one of them: playback, export and operators alike); `kmsbridge access revoke-window` prints the value. Each id is 64 lowercase hex characters."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for kek in var.revoked_kek_ids : can(regex("^[0-9a-f]{64}$", kek))])
    error_message = "Each revoked KEK id must be 64 lowercase hex characters (the SHA-256 of the KEK's public key SPKI)."
  }
}

################################################################################
# Key
################################################################################

variable "description" {
  description = "Description of the KMS key."
  type        = string
  default     = "kmsbridge: wraps the org KEK private keys of call recordings"

  validation {
    condition     = length(var.description) <= 8192
    error_message = "description must be at most 8192 characters."
  }
}

variable "alias_name" {
  description = "Alias of the key, starting with alias/ (alias/aws/ is reserved by AWS)."
  type        = string
  default     = "alias/kmsbridge"

  validation {
    condition     = can(regex("^alias/[A-Za-z0-9/_-]{1,250}$", var.alias_name)) && !startswith(var.alias_name, "alias/aws/")
    error_message = "alias_name must match ^alias/[A-Za-z0-9/_-]{1,250}$ and must not start with alias/aws/."
  }
}

variable "key_enabled" {
  description = "Whether the key is enabled. Set to false and apply to keep a disabled key disabled (aws kms disable-key alone is undone by the next apply)."
  type        = bool
  default     = true
}

variable "deletion_window_in_days" {
  description = "Waiting period, in days, between scheduling deletion of the key and its deletion (7 to 30). Deleting the key makes every recording of its orgs unreadable for good."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30 && floor(var.deletion_window_in_days) == var.deletion_window_in_days
    error_message = "deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "rotation_period_in_days" {
  description = "Automatic rotation period of the key material, in days (90 to 2560). Rotation is always on; old key material keeps decrypting."
  type        = number
  default     = 365

  validation {
    condition     = var.rotation_period_in_days >= 90 && var.rotation_period_in_days <= 2560 && floor(var.rotation_period_in_days) == var.rotation_period_in_days
    error_message = "rotation_period_in_days must be a whole number from 90 to 2560."
  }
}

variable "multi_region" {
  description = "Create a multi-Region primary key, so that replicas (aws_kms_replica_key) in other regions can unwrap the same KEKs. Each replica has its own key policy and enabled state. Immutable: KMS cannot change it on an existing key, so changing it after the first apply plans a new key, which prevent_destroy refuses."
  type        = bool
  default     = false
}

variable "key_administrator_arns" {
  description = "IAM principal ARNs that administer the key (describe, enable, disable, change the policy, revoke grants, schedule deletion) without being able to use it for cryptography. The account root keeps full access through IAM in every case."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.key_administrator_arns : can(regex("^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|(role|user)/[A-Za-z0-9+=,.@_/-]{1,512})|sts::[0-9]{12}:assumed-role/[A-Za-z0-9+=,.@_/-]{1,512})$", arn))])
    error_message = "Each key administrator must be an IAM root, role or user ARN."
  }
}

variable "source_policy_documents" {
  description = "Extra key policy documents (JSON) merged into the key policy; their statement ids must differ from this module's. For statements of your own, such as a break-glass role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for doc in var.source_policy_documents : can(jsondecode(doc).Statement)])
    error_message = "Each source policy document must be a JSON policy document with a Statement."
  }
}

variable "override_policy_documents" {
  description = "Key policy documents (JSON) whose statements replace this module's statements of the same sid. Overriding a Platform* or DenyDecryptRevokedKekPeriods statement changes what the platform may do: read the plan."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for doc in var.override_policy_documents : can(jsondecode(doc).Statement)])
    error_message = "Each override policy document must be a JSON policy document with a Statement."
  }
}

variable "tags" {
  description = "Tags for the key."
  type        = map(string)
  default     = {}
}
