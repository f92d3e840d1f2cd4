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
  org_ids             = ["globex.eu", "acme", "acme"]
  platform_account_id = "111122223333"
  decryptor_role_arn  = "arn:aws:iam::111122223333:role/kmsbridge-decryptor"
  rotation_role_arn   = "arn:aws:iam::111122223333:role/kmsbridge-rotation"
  jobs_role_arn       = "arn:aws:iam::111122223333:role/kmsbridge-jobs"
  operator_role_arns  = ["arn:aws:iam::111122223333:role/kmsbridge-operator"]
}

run "one_statement_per_platform_role" {
  command = plan

  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == [
      "EnableAccountIamPolicies",
      "PlatformDecryptorUnwrapKeks",
      "PlatformJobsRewrapKeks",
      "PlatformOperatorWrapKeks",
      "PlatformRotationWrapKeks",
    ]
    error_message = "Unexpected statements: ${data.aws_iam_policy_document.this.json}"
  }

  assert {
    condition = {
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid => s.Condition.StringEquals["aws:PrincipalArn"]
      if startswith(s.Sid, "Platform")
      } == {
      PlatformDecryptorUnwrapKeks = "arn:aws:iam::111122223333:role/kmsbridge-decryptor"
      PlatformJobsRewrapKeks      = "arn:aws:iam::111122223333:role/kmsbridge-jobs"
      PlatformOperatorWrapKeks    = "arn:aws:iam::111122223333:role/kmsbridge-operator"
      PlatformRotationWrapKeks    = "arn:aws:iam::111122223333:role/kmsbridge-rotation"
    }
    error_message = "Each platform statement names exactly its role."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement :
      s.Principal == { AWS = "arn:aws:iam::111122223333:root" } && s.Condition == {
        StringEquals = {
          "aws:PrincipalArn"                        = s.Condition.StringEquals["aws:PrincipalArn"]
          "kms:CallerAccount"                       = "111122223333"
          "kms:EncryptionContext:kmsbridge:org"     = ["acme", "globex.eu"]
          "kms:EncryptionContext:kmsbridge:purpose" = "kek"
        }
      } if startswith(s.Sid, "Platform")
    ])
    error_message = "A platform statement lacks the platform root principal, or its role, org, purpose or account condition."
  }

  assert {
    condition     = jsondecode(data.aws_iam_policy_document.this.json).Statement[1].Action == "kms:Decrypt"
    error_message = "The decryptor may only kms:Decrypt."
  }

  assert {
    condition     = length(aws_kms_grant.platform) == 0
    error_message = "key_policy mode makes no grant."
  }

  assert {
    condition     = aws_kms_key.this.customer_master_key_spec == "SYMMETRIC_DEFAULT" && aws_kms_key.this.enable_key_rotation && aws_kms_key.this.deletion_window_in_days == 30
    error_message = "A symmetric key, rotation on, 30-day deletion window."
  }
}

run "revoked_kek_ids_deny_every_principal" {
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
        Principal = { AWS = "*" }
        Condition = {
          StringEquals = {
            "kms:EncryptionContext:kmsbridge:kek" = [
              "0000000000000000000000000000000000000000000000000000000000000000",
              "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ]
          }
        }
    }]
    error_message = "Unexpected deny: ${data.aws_iam_policy_document.this.json}"
  }

  assert {
    condition     = strcontains(data.aws_iam_policy_document.administration.json, "DenyDecryptRevokedKekPeriods")
    error_message = "The revoked key policy keeps the deny."
  }
}

run "revoked_kek_ids_must_be_kek_ids" {
  command = plan

  variables {
    revoked_kek_ids = ["0000000000000000000000000000000000000000000000000000000000000000A"]
  }

  expect_failures = [var.revoked_kek_ids]
}

run "export_and_lkm_statements" {
  command = plan

  variables {
    export_enabled = true
    lkm_role_arn   = "arn:aws:iam::111122223333:role/kmsbridge-lkm"
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : [s.Action, s.Condition.StringEquals["aws:PrincipalArn"], s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:purpose"]]
      if s.Sid == "PlatformJobsExportToThisKey"
    ]) == ["kms:GenerateDataKey", "arn:aws:iam::111122223333:role/kmsbridge-jobs", "export"]
    error_message = "Export to this key: the jobs role, GenerateDataKey only, purpose export."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Condition.StringEquals["aws:PrincipalArn"]
      if s.Sid == "PlatformLkmWrapKeks"
    ]) == "arn:aws:iam::111122223333:role/kmsbridge-lkm"
    error_message = "The LKM role has its own statement."
  }
}

run "grants_replace_the_platform_statements" {
  command = plan

  variables {
    access_mode    = "grants"
    export_enabled = true
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
      "jobs_export/acme", "jobs_export/globex.eu",
      "operator-kmsbridge-operator/acme", "operator-kmsbridge-operator/globex.eu",
      "rotation/acme", "rotation/globex.eu",
    ])
    error_message = "One grant per role and org."
  }

  assert {
    condition = alltrue([
      for name, grant in aws_kms_grant.platform :
      one(grant.constraints).encryption_context_subset == tomap({
        "kmsbridge:org"     = split("/", name)[1]
        "kmsbridge:purpose" = startswith(name, "jobs_export/") ? "export" : "kek"
      })
    ])
    error_message = "Every grant is constrained to one org and one purpose."
  }

  assert {
    condition     = aws_kms_grant.platform["decryptor/globex.eu"].operations == toset(["Decrypt"]) && aws_kms_grant.platform["jobs_export/acme"].operations == toset(["GenerateDataKey"])
    error_message = "The decryptor's grant allows Decrypt only, the export grant GenerateDataKey only."
  }

  assert {
    condition     = aws_kms_grant.platform["decryptor/globex.eu"].name == "kmsbridge-decryptor-globex_eu"
    error_message = "Grant names keep to the characters KMS accepts."
  }
}

run "extension_documents_merge_and_override" {
  command = plan

  variables {
    source_policy_documents = [jsonencode({
      Version   = "2012-10-17"
      Statement = [{ Sid = "BreakGlass", Effect = "Allow", Action = "kms:DescribeKey", Resource = "*", Principal = { AWS = "arn:aws:iam::444455556666:role/break-glass" } }]
    })]
    override_policy_documents = [jsonencode({
      Version   = "2012-10-17"
      Statement = [{ Sid = "PlatformJobsRewrapKeks", Effect = "Allow", Action = "kms:Decrypt", Resource = "*", Principal = { AWS = "arn:aws:iam::111122223333:root" } }]
    })]
  }

  assert {
    condition     = contains([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid], "BreakGlass")
    error_message = "source_policy_documents add their statements."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Action if s.Sid == "PlatformJobsRewrapKeks"
    ]) == "kms:Decrypt"
    error_message = "override_policy_documents replace a statement by sid."
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
