# A platform serving two orgs, each with its own customer key in its own account, as the
# policy test renders it (tests/terraform/test_policies.py). Planned against moto's server:
# AWS_ENDPOINT_URL points every AWS API at it, and assuming a role in another account
# gives that account's identity, so each key policy names its own account.

terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

provider "aws" {
  alias  = "acme"
  region = "eu-west-1"

  assume_role {
    role_arn = "arn:aws:iam::444455556666:role/customer-admin"
  }
}

provider "aws" {
  alias  = "globex"
  region = "eu-west-1"

  assume_role {
    role_arn = "arn:aws:iam::777788889999:role/customer-admin"
  }
}

variable "acme_key_arn" {
  description = "The ARN acme's key will have (KMS makes it at apply; the plan needs it now)."
  type        = string
}

variable "globex_key_arn" {
  description = "The ARN globex's key will have."
  type        = string
}

variable "revoked_kek_ids" {
  description = "KEK ids revoked in both customers' key policies."
  type        = list(string)
}

variable "zip_path" {
  description = "Stand-in for the function packages."
  type        = string
}

module "platform" {
  source = "../terraform/modules/platform"

  orgs = {
    acme   = [var.acme_key_arn]
    globex = [var.globex_key_arn]
  }
  export_kms_key_arns   = { acme = [var.acme_key_arn] }
  recording_bucket_arns = ["arn:aws:s3:::recordings"]
  export_bucket_arn     = "arn:aws:s3:::exports"

  decryptor_zip_path = var.zip_path
  rotation_zip_path  = var.zip_path
  jobs_zip_path      = var.zip_path
}

module "acme_key" {
  source    = "../terraform/modules/customer-key"
  providers = { aws = aws.acme }

  org_ids             = ["acme"]
  platform_account_id = module.platform.platform_account_id
  decryptor_role_arn  = module.platform.decryptor_role_arn
  rotation_role_arn   = module.platform.rotation_role_arn
  jobs_role_arn       = module.platform.jobs_role_arn
  operator_role_arns  = [module.platform.operator_role_arn]
  export_enabled      = true
  revoked_kek_ids     = var.revoked_kek_ids
}

module "globex_key" {
  source    = "../terraform/modules/customer-key"
  providers = { aws = aws.globex }

  org_ids             = ["globex"]
  platform_account_id = module.platform.platform_account_id
  decryptor_role_arn  = module.platform.decryptor_role_arn
  rotation_role_arn   = module.platform.rotation_role_arn
  jobs_role_arn       = module.platform.jobs_role_arn
  operator_role_arns  = [module.platform.operator_role_arn]
  revoked_kek_ids     = var.revoked_kek_ids
}

output "platform_account_id" {
  description = "The platform's account (moto's default)."
  value       = module.platform.platform_account_id
}

output "role_arns" {
  description = "The platform roles."
  value = {
    decryptor = module.platform.decryptor_role_arn
    rotation  = module.platform.rotation_role_arn
    jobs      = module.platform.jobs_role_arn
    operator  = module.platform.operator_role_arn
  }
}

output "operator_policy" {
  description = "The operator's IAM policy."
  value       = module.platform.operator_policy_json
}

output "key_policies" {
  description = "Each customer key's policy, by org."
  value = {
    acme   = module.acme_key.key_policy
    globex = module.globex_key.key_policy
  }
}
