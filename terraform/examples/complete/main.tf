# The platform account: key table, functions, queues, playback bucket.
provider "aws" {
  region = var.region
}

# The customer's account: their KMS key. Without customer_role_arn both modules use the
# same credentials, which is enough to try kmsbridge in one account.
provider "aws" {
  alias  = "customer"
  region = coalesce(var.customer_region, var.region)

  dynamic "assume_role" {
    for_each = var.customer_role_arn == null ? [] : [var.customer_role_arn]

    content {
      role_arn     = assume_role.value
      session_name = "kmsbridge-customer-key"
    }
  }
}

# The key policy names the platform roles (by ARN, in aws:PrincipalArn conditions), and
# the roles' policies name the key: the modules read each other's outputs, and Terraform
# orders the resources (roles, then the key, then the role policies).
module "platform" {
  source = "../../modules/platform"

  name_prefix         = var.name_prefix
  orgs                = { for org in var.org_ids : org => [module.customer_key.key_arn] }
  export_kms_key_arns = var.export_to_customer_key ? { for org in var.org_ids : org => [module.customer_key.key_arn] } : {}

  operator_trusted_principal_arns = var.operator_trusted_principal_arns
  alarm_topic_arn                 = var.alarm_topic_arn

  decryptor_zip_path = var.decryptor_zip_path
  rotation_zip_path  = var.rotation_zip_path
  jobs_zip_path      = var.jobs_zip_path

  playback_role_arns    = var.playback_role_arns
  recording_bucket_arns = var.recording_bucket_arns

  tags = var.tags
}

module "customer_key" {
  source = "../../modules/customer-key"

  providers = {
    aws = aws.customer
  }

  org_ids             = var.org_ids
  platform_account_id = module.platform.platform_account_id
  decryptor_role_arn  = module.platform.decryptor_role_arn
  rotation_role_arn   = module.platform.rotation_role_arn
  jobs_role_arn       = module.platform.jobs_role_arn
  operator_role_arns  = [module.platform.operator_role_arn]
  export_enabled      = var.export_to_customer_key
  access_mode         = var.access_mode
  revoked_kek_ids     = var.revoked_kek_ids
  alias_name          = "alias/${var.name_prefix}"

  tags = var.tags
}
