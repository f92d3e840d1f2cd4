# Offline: `terraform init` then `terraform test` in the module directory. The provider
# renders the policy documents locally; no AWS call is made (plan only, fake credentials,
# the caller identity overridden).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "444455556666" }
}

variables {
  org_ids             = ["acme", "globex.eu"]
  platform_account_id = "111122223333"
  decryptor_role_arn  = "arn:aws:iam::111122223333:role/kmsbridge-decryptor"
  rotation_role_arn   = "arn:aws:iam::111122223333:role/kmsbridge-rotation"
  jobs_role_arn       = "arn:aws:iam::111122223333:role/kmsbridge-jobs"
}

run "one_statement_per_platform_role" {
  command = plan

  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == [
      "EnableAccountIamPolicies",
      "PlatformDecryptorDecrypt",
      "PlatformRotationWrapKeks",
      "PlatformJobsRewrapExport",
    ]
    error_message = "Unexpected statements: ${data.aws_iam_policy_document.this.json}"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement :
      s.Condition.StringEquals == {
        "aws:PrincipalAccount"                    = "111122223333"
        "kms:CallerAccount"                       = "111122223333"
        "kms:EncryptionContext:kmsbridge:org"     = ["acme", "globex.eu"]
        "kms:EncryptionContext:kmsbridge:purpose" = "kek"
      } if startswith(s.Sid, "Platform")
    ])
    error_message = "A platform statement lacks its org, purpose or account condition."
  }

  assert {
    condition     = jsondecode(data.aws_iam_policy_document.this.json).Statement[1].Action == "kms:Decrypt"
    error_message = "The decryptor may only kms:Decrypt."
  }

  assert {
    condition     = length(aws_kms_grant.platform) == 0
    error_message = "key_policy mode makes no grant."
  }
}

run "revoked_kek_ids_add_the_deny" {
  command = plan

  variables {
    revoked_kek_ids = [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ]
  }

  assert {
    condition = [
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s
      if s.Sid == "DenyDecryptRevokedKekPeriods"
      ] == [{
        Sid       = "DenyDecryptRevokedKekPeriods"
        Effect    = "Deny"
        Action    = "kms:Decrypt"
        Resource  = "*"
        Principal = { AWS = "arn:aws:iam::111122223333:role/kmsbridge-decryptor" }
        Condition = {
          "ForAnyValue:StringEquals" = {
            "kms:EncryptionContext:kmsbridge:kek" = [
              "0000000000000000000000000000000000000000000000000000000000000000",
              "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ]
          }
        }
    }]
    error_message = "Unexpected deny: ${data.aws_iam_policy_document.this.json}"
  }
}

run "revoked_kek_ids_must_be_kek_ids" {
  command = plan

  variables {
    revoked_kek_ids = ["0000000000000000000000000000000000000000000000000000000000000000A"]
  }

  expect_failures = [var.revoked_kek_ids]
}

run "grants_replace_the_platform_statements" {
  command = plan

  variables {
    access_mode            = "grants"
    provisioning_role_arns = ["arn:aws:iam::111122223333:role/kmsbridge-operator"]
  }

  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == [
      "EnableAccountIamPolicies",
    ]
    error_message = "grants mode keeps no platform statement."
  }

  assert {
    condition = toset(keys(aws_kms_grant.platform)) == toset([
      "decryptor/acme", "decryptor/globex.eu",
      "jobs/acme", "jobs/globex.eu",
      "provisioning-kmsbridge-operator/acme", "provisioning-kmsbridge-operator/globex.eu",
      "rotation/acme", "rotation/globex.eu",
    ])
    error_message = "One grant per role and org."
  }

  assert {
    condition = alltrue([
      for grant in aws_kms_grant.platform :
      one(grant.constraints).encryption_context_subset["kmsbridge:purpose"] == "kek"
    ])
    error_message = "Every grant is constrained to KEK wraps."
  }

  assert {
    condition     = aws_kms_grant.platform["decryptor/globex.eu"].operations == toset(["Decrypt"])
    error_message = "The decryptor's grant allows Decrypt only."
  }

  assert {
    condition     = aws_kms_grant.platform["decryptor/globex.eu"].name == "kmsbridge-decryptor-globex_eu"
    error_message = "Grant names keep to the characters KMS accepts."
  }
}

run "platform_access_disabled_keeps_only_administration" {
  command = plan

  variables {
    platform_access_enabled = false
  }

  assert {
    condition     = data.aws_iam_policy_document.this.json == data.aws_iam_policy_document.administration.json
    error_message = "With platform access disabled the policy names no platform role."
  }
}

run "roles_must_be_in_the_platform_account" {
  command = plan

  variables {
    jobs_role_arn = "arn:aws:iam::999999999999:role/kmsbridge-jobs"
  }

  expect_failures = [aws_kms_key.this]
}

run "org_ids_are_validated" {
  command = plan

  variables {
    org_ids = ["acme corp"]
  }

  expect_failures = [var.org_ids]
}
