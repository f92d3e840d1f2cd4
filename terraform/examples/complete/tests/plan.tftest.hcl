# Offline: `terraform init` then `terraform test` in this directory. Plans the whole
# example with fake credentials for both accounts: the two modules wire together without
# a dependency cycle.

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

# Role ARNs are known only after apply; the key policy that names them is checked here.
override_resource {
  target          = module.platform.aws_iam_role.decryptor
  override_during = plan
  values          = { arn = "arn:aws:iam::111122223333:role/kmsbridge-decryptor" }
}

override_resource {
  target          = module.platform.aws_iam_role.rotation
  override_during = plan
  values          = { arn = "arn:aws:iam::111122223333:role/kmsbridge-rotation" }
}

override_resource {
  target          = module.platform.aws_iam_role.jobs
  override_during = plan
  values          = { arn = "arn:aws:iam::111122223333:role/kmsbridge-jobs" }
}

variables {
  org_ids            = ["acme"]
  decryptor_zip_path = "../../modules/platform/tests/handler.zip"
  rotation_zip_path  = "../../modules/platform/tests/handler.zip"
  jobs_zip_path      = "../../modules/platform/tests/handler.zip"
  revoked_kek_ids    = ["0000000000000000000000000000000000000000000000000000000000000000"]
}

run "both_modules_plan_together" {
  command = plan

  assert {
    condition     = module.platform.platform_account_id == "111122223333"
    error_message = "The customer key is given the platform's account."
  }

  assert {
    condition     = module.platform.log_group_names.decryptor == "/aws/lambda/kmsbridge-decryptor"
    error_message = "The platform is planned with its default names."
  }

  assert {
    condition = [
      for s in jsondecode(module.customer_key.key_policy).Statement : s.Principal.AWS
      if s.Sid == "DenyDecryptRevokedKekPeriods"
    ] == ["arn:aws:iam::111122223333:role/kmsbridge-decryptor"]
    error_message = "revoked_kek_ids reaches the customer key's policy: ${module.customer_key.key_policy}"
  }
}
