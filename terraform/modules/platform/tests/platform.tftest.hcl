# Offline: `terraform init` then `terraform test` in the module directory. Plans only, with
# fake credentials; the account and the ARNs the plan cannot know are overridden, so the
# provider renders the role policies locally. tests/handler.zip stands in for the builds.

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
  values = { account_id = "111122223333" }
}

override_resource {
  target          = aws_dynamodb_table.keks
  override_during = plan
  values          = { arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/kmsbridge-keks" }
}

override_resource {
  target          = aws_s3_bucket.playback
  override_during = plan
  values          = { arn = "arn:aws:s3:::kmsbridge-playback-111122223333-eu-west-1", id = "kmsbridge-playback-111122223333-eu-west-1" }
}

override_resource {
  target          = aws_cloudwatch_log_group.decryptor
  override_during = plan
  values          = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/kmsbridge-decryptor" }
}

override_resource {
  target          = aws_cloudwatch_log_group.rotation
  override_during = plan
  values          = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/kmsbridge-rotation" }
}

override_resource {
  target          = aws_cloudwatch_log_group.jobs
  override_during = plan
  values          = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/kmsbridge-jobs" }
}

override_resource {
  target          = aws_sqs_queue.jobs
  override_during = plan
  values          = { arn = "arn:aws:sqs:eu-west-1:111122223333:kmsbridge-jobs", url = "https://sqs.eu-west-1.amazonaws.com/111122223333/kmsbridge-jobs" }
}

override_resource {
  target          = aws_sqs_queue.rotation_dlq
  override_during = plan
  values          = { arn = "arn:aws:sqs:eu-west-1:111122223333:kmsbridge-rotation-dlq" }
}

variables {
  decryptor_zip_path = "tests/handler.zip"
  rotation_zip_path  = "tests/handler.zip"
  jobs_zip_path      = "tests/handler.zip"
  orgs = {
    acme        = ["arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    "globex.eu" = ["arn:aws:kms:eu-west-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab", "arn:aws:kms:eu-central-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab"]
  }
  recording_bucket_arns = ["arn:aws:s3:::acme-recordings"]
}

run "decryptor_unwraps_only_with_the_org_context" {
  command = plan

  assert {
    condition = [
      for s in jsondecode(data.aws_iam_policy_document.decryptor.json).Statement : [s.Sid, s.Action]
      if can(regex("^kms:", s.Action))
    ] == [["UnwrapKeksOfServedOrgs", "kms:Decrypt"]]
    error_message = "The decryptor may only kms:Decrypt: ${data.aws_iam_policy_document.decryptor.json}"
  }

  assert {
    condition = toset(one([
      for s in jsondecode(data.aws_iam_policy_document.decryptor.json).Statement : s.Resource
      if s.Sid == "UnwrapKeksOfServedOrgs"
      ])) == toset([
      "arn:aws:kms:eu-central-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab",
      "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "arn:aws:kms:eu-west-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ])
    error_message = "The decryptor may use exactly the customer keys of the served orgs."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.decryptor.json).Statement : s.Condition
      if s.Sid == "UnwrapKeksOfServedOrgs"
      ]) == {
      StringEquals = {
        "kms:EncryptionContext:kmsbridge:org"     = ["acme", "globex.eu"]
        "kms:EncryptionContext:kmsbridge:purpose" = "kek"
      }
    }
    error_message = "The decryptor's kms:Decrypt is tied to the served orgs and to KEK wraps."
  }

  assert {
    condition     = aws_lambda_function.decryptor.environment[0].variables["KMSBRIDGE_ALLOWED_ORGS"] == "acme,globex.eu"
    error_message = "KMSBRIDGE_ALLOWED_ORGS lists the served orgs."
  }
}

run "every_kms_permission_carries_the_org_condition" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
        data.aws_iam_policy_document.scheduler.json,
        data.aws_iam_policy_document.provisioning.json,
        ] : [
        for s in jsondecode(doc).Statement :
        s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:org"] == ["acme", "globex.eu"]
        if anytrue([for a in flatten([s.Action]) : startswith(a, "kms:")])
      ]
    ]))
    error_message = "A KMS permission lacks the org condition."
  }

  assert {
    condition = alltrue(flatten([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
        data.aws_iam_policy_document.scheduler.json,
      ] : [for s in jsondecode(doc).Statement : [for a in flatten([s.Action]) : !strcontains(a, "*")]]
    ]))
    error_message = "A platform role is granted a wildcard action."
  }
}

run "no_org_no_key_and_no_table" {
  command = plan

  variables {
    orgs = {}
  }

  assert {
    condition = alltrue([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
      ] : !strcontains(doc, "kms:") && !strcontains(doc, "dynamodb:")
    ])
    error_message = "Without orgs the roles may use no key and read no table item."
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.decryptor.environment[0].variables), "KMSBRIDGE_ALLOWED_ORGS")
    error_message = "Without orgs KMSBRIDGE_ALLOWED_ORGS is not set."
  }
}

run "only_cloudwatch_retention_values" {
  command = plan

  variables {
    log_retention_in_days = 100
  }

  expect_failures = [var.log_retention_in_days]
}

run "customer_keys_must_be_key_arns" {
  command = plan

  variables {
    orgs = { acme = ["arn:aws:kms:eu-west-1:444455556666:alias/kmsbridge"] }
  }

  expect_failures = [var.orgs]
}

run "max_age_is_bounded" {
  command = plan

  variables {
    max_age_seconds = 3601
  }

  expect_failures = [var.max_age_seconds]
}

run "rotation_schedule_expression_is_checked" {
  command = plan

  variables {
    rotation_schedule_expression = "every day"
  }

  expect_failures = [var.rotation_schedule_expression]
}
