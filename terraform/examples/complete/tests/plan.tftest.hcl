# Offline: `terraform init` then `terraform test` in this directory. Plans the whole
# example with fake credentials for both accounts: the two modules wire together without
# a dependency cycle, and the customer's key policy lets the operator onboard.

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

provider "aws" {
  alias                       = "customer"
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = module.platform.data.aws_caller_identity.current
  values = { account_id = "111122223333" }
}

override_data {
  target = module.customer_key.data.aws_caller_identity.current
  values = { account_id = "444455556666" }
}

variables {
  org_ids                = ["acme"]
  decryptor_zip_path     = "../../modules/platform/tests/handler.zip"
  rotation_zip_path      = "../../modules/platform/tests/handler.zip"
  jobs_zip_path          = "../../modules/platform/tests/handler.zip"
  revoked_kek_ids        = ["0000000000000000000000000000000000000000000000000000000000000000"]
  export_to_customer_key = true
}

run "both_modules_plan_together" {
  command = plan

  assert {
    condition     = module.platform.platform_account_id == "111122223333"
    error_message = "The customer key is given the platform's account."
  }

  # The role ARNs are known at plan time: the customer's key policy is shown in full.
  assert {
    condition = one([
      for s in jsondecode(module.customer_key.key_policy).Statement : s.Condition.StringEquals["aws:PrincipalArn"]
      if s.Sid == "PlatformOperatorWrapKeks"
    ]) == "arn:aws:iam::111122223333:role/kmsbridge-operator"
    error_message = "The operator who runs org add is allowed on the customer's key: ${module.customer_key.key_policy}"
  }

  assert {
    condition = one([
      for s in jsondecode(module.customer_key.key_policy).Statement : s.Principal.AWS
      if s.Sid == "DenyDecryptRevokedKekPeriods"
    ]) == "*"
    error_message = "revoked_kek_ids reaches the customer key's policy and denies every principal."
  }

  assert {
    condition     = contains([for s in jsondecode(module.customer_key.key_policy).Statement : s.Sid], "PlatformJobsExportToThisKey")
    error_message = "Export to the customer's key is allowed by its policy."
  }

  assert {
    condition     = startswith(module.platform.operator_role_arn, "arn:aws:iam::111122223333:role/")
    error_message = "The example creates the operator role."
  }
}
