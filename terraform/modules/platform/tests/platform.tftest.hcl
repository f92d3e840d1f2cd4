# Offline: `terraform init` then `terraform test` in the module directory. Plans only, with
# fake credentials; the account and the attributes a plan cannot know are overridden, so
# the provider renders the policies locally. tests/handler.zip stands in for the builds.

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
  target          = aws_s3_bucket.playback
  override_during = plan
  values          = { arn = "arn:aws:s3:::kmsbridge-playback-111122223333-eu-west-1", id = "kmsbridge-playback-111122223333-eu-west-1" }
}

override_resource {
  target          = aws_kms_key.platform_ca
  override_during = plan
  values          = { arn = "arn:aws:kms:eu-west-1:111122223333:key/5555abcd-12ab-34cd-56ef-1234567890ab" }
}

variables {
  decryptor_zip_path = "tests/handler.zip"
  rotation_zip_path  = "tests/handler.zip"
  jobs_zip_path      = "tests/handler.zip"
  orgs = {
    acme        = ["arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    "globex.eu" = ["arn:aws:kms:eu-west-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab", "arn:aws:kms:eu-central-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab"]
  }
  export_kms_key_arns               = { acme = ["arn:aws:kms:eu-west-1:444455556666:key/0000abcd-12ab-34cd-56ef-1234567890ab"] }
  recording_bucket_arns             = ["arn:aws:s3:::acme-recordings"]
  export_bucket_arn                 = "arn:aws:s3:::kmsbridge-exports"
  access_canary_schedule_expression = "rate(1 hour)"
}

run "one_kms_statement_per_org_pairs_its_keys_with_its_id" {
  command = plan

  assert {
    condition = {
      for s in jsondecode(data.aws_iam_policy_document.decryptor.json).Statement : s.Sid => [s.Action, s.Resource, s.Condition]
      if startswith(s.Sid, "UnwrapKeksOf")
      } == {
      UnwrapKeksOfacme822b33ad = ["kms:Decrypt", "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab", {
        StringEquals = { "kms:EncryptionContext:kmsbridge:org" = "acme", "kms:EncryptionContext:kmsbridge:purpose" = "kek" }
      }]
      UnwrapKeksOfglobexeud4b7b2dd = ["kms:Decrypt", [
        "arn:aws:kms:eu-west-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws:kms:eu-central-1:777788889999:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        ], {
        StringEquals = { "kms:EncryptionContext:kmsbridge:org" = "globex.eu", "kms:EncryptionContext:kmsbridge:purpose" = "kek" }
      }]
    }
    error_message = "The decryptor unwraps each org's KEKs with that org's keys only: ${data.aws_iam_policy_document.decryptor.json}"
  }

  # Every KMS statement of every role names one org and only keys of that org.
  assert {
    condition = alltrue(flatten([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
        data.aws_iam_policy_document.operator.json,
        ] : [
        for s in jsondecode(doc).Statement : alltrue([
          for arn in flatten([s.Resource]) : contains(
            s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:purpose"] == "export" ? var.export_kms_key_arns[s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:org"]] : var.orgs[s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:org"]],
            arn,
          )
        ]) if anytrue([for a in flatten([s.Action]) : startswith(a, "kms:")]) && !startswith(s.Sid, "SignKek")
      ]
    ]))
    error_message = "A KMS statement pairs an org with another org's key."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.jobs.json).Statement : [s.Action, s.Resource, s.Condition.StringEquals]
      if startswith(s.Sid, "ExportToKmsKeysOf")
      ]) == ["kms:GenerateDataKey", "arn:aws:kms:eu-west-1:444455556666:key/0000abcd-12ab-34cd-56ef-1234567890ab", {
      "kms:EncryptionContext:kmsbridge:org"     = "acme"
      "kms:EncryptionContext:kmsbridge:purpose" = "export"
    }]
    error_message = "The jobs role exports to the org's registered keys only, with purpose export."
  }

  assert {
    condition = alltrue(flatten([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
        data.aws_iam_policy_document.scheduler.json,
        data.aws_iam_policy_document.operator.json,
      ] : [for s in jsondecode(doc).Statement : [for a in flatten([s.Action]) : !strcontains(a, "*")]]
    ]))
    error_message = "A platform role is granted a wildcard action."
  }
}

run "only_the_operator_sends_jobs" {
  command = plan

  assert {
    condition     = !strcontains(data.aws_iam_policy_document.jobs.json, "sqs:SendMessage")
    error_message = "The jobs function only consumes its queue."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.jobs_queue.json).Statement : [s.Effect, s.Action, s.Principal, s.Condition]
      if s.Sid == "OnlyTheOperatorSendsJobs"
    ]) == ["Deny", "sqs:SendMessage", "*", { StringNotEquals = { "aws:PrincipalArn" = "arn:aws:iam::111122223333:role/kmsbridge-operator" } }]
    error_message = "The queue policy denies sqs:SendMessage to everyone but the operator role."
  }

  assert {
    condition     = contains([for s in jsondecode(data.aws_iam_policy_document.operator.json).Statement : s.Sid], "SubmitJobs") && contains([for s in jsondecode(data.aws_iam_policy_document.operator.json).Statement : s.Sid], "ListOrgs")
    error_message = "The operator submits jobs and may scan the table (org list, --all-orgs)."
  }

  assert {
    condition     = jsondecode(aws_iam_role_policy.this["operator"].policy) == jsondecode(data.aws_iam_policy_document.operator.json)
    error_message = "The created operator role carries the operator policy."
  }
}

run "functions_runtime_environment_and_snapstart" {
  command = plan

  assert {
    condition     = alltrue([for f in [aws_lambda_function.decryptor, aws_lambda_function.rotation, aws_lambda_function.jobs] : f.runtime == "python3.13"])
    error_message = "Every function runs python3.13."
  }

  assert {
    condition     = aws_lambda_function.decryptor.environment[0].variables["KMSBRIDGE_REQUIRE_SEALED"] == "1"
    error_message = "The decryptor refuses unsealed unwraps by default."
  }

  assert {
    condition     = aws_lambda_function.decryptor.publish && one(aws_lambda_function.decryptor.snap_start).apply_on == "PublishedVersions" && aws_lambda_alias.decryptor.name == "live"
    error_message = "The decryptor publishes versions with SnapStart; callers use the live alias."
  }

  assert {
    condition = alltrue([
      for f in [aws_lambda_function.decryptor, aws_lambda_function.rotation, aws_lambda_function.jobs] :
      alltrue([for name in keys(f.environment[0].variables) : startswith(name, "KMSBRIDGE_")])
    ])
    error_message = "Only settings kmsbridge reads: no POWERTOOLS_* variables."
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.jobs.environment[0].variables), "KMSBRIDGE_JOBS_QUEUE_URL") && aws_lambda_function.jobs.environment[0].variables["KMSBRIDGE_EXPORT_BUCKET"] == "kmsbridge-exports"
    error_message = "The jobs function knows its export bucket and no queue URL."
  }

  assert {
    condition     = aws_lambda_function.decryptor.environment[0].variables["KMSBRIDGE_ALLOWED_ORGS"] == "acme,globex.eu"
    error_message = "KMSBRIDGE_ALLOWED_ORGS lists the served orgs."
  }

  assert {
    condition     = one(aws_lambda_function.jobs.logging_config).application_log_level == "INFO"
    error_message = "log_level is Lambda's application log level."
  }

  assert {
    condition     = aws_scheduler_schedule.rotation.state == "ENABLED" && aws_scheduler_schedule.access_canary[0].state == "ENABLED" && jsondecode(aws_scheduler_schedule.access_canary[0].target[0].input) == { task = "access-canary" }
    error_message = "Rotation and the access canary run while orgs are served."
  }
}

run "recordings_are_listable_and_copies_protected" {
  command = plan

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.decryptor.json).Statement : [s.Action, s.Resource] if s.Sid == "ListRecordings"
    ]) == ["s3:ListBucket", "arn:aws:s3:::acme-recordings"]
    error_message = "A missing recording must be a 404 (NOT_FOUND), which needs s3:ListBucket."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.playback_bucket.json).Statement : s.Condition if s.Sid == "DenyTlsBelow12"
    ]) == { NumericLessThan = { "s3:TlsVersion" = "1.2" } }
    error_message = "The playback bucket refuses TLS below 1.2."
  }

  assert {
    condition     = length(one(aws_s3_bucket_lifecycle_configuration.playback.rule).noncurrent_version_expiration) == 0
    error_message = "No noncurrent-version rule on an unversioned bucket."
  }
}

run "alarms_and_their_topic" {
  command = plan

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.this)) == toset(["access-revoked", "access-unavailable", "decryptor-errors", "rotation-errors", "jobs-dead-letters", "rotation-dead-letters"])
    error_message = "Alarms on lost access, function errors and both dead-letter queues."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["access-revoked"].namespace == "kmsbridge" && aws_cloudwatch_metric_alarm.this["access-revoked"].metric_name == "OrgAccessRevoked" && aws_cloudwatch_metric_alarm.this["jobs-dead-letters"].dimensions == tomap({ QueueName = "kmsbridge-jobs-dlq" })
    error_message = "The alarms watch the canary's metrics and the dead-letter queues."
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 1
    error_message = "Without alarm_topic_arn the module creates the topic."
  }
}

run "platform_ca_key_signs_for_operator_and_rotation_only" {
  command = plan

  assert {
    condition     = aws_kms_key.platform_ca[0].customer_master_key_spec == "ECC_NIST_P384" && aws_kms_key.platform_ca[0].key_usage == "SIGN_VERIFY"
    error_message = "The CA key is ECC_NIST_P384 for signing."
  }

  assert {
    condition = one([
      for s in jsondecode(data.aws_iam_policy_document.platform_ca.json).Statement : [s.Effect, s.Action, s.Principal, s.Condition]
      if s.Sid == "OnlyOperatorAndRotationSign"
      ]) == ["Deny", "kms:Sign", "*", { StringNotEquals = { "aws:PrincipalArn" = [
        "arn:aws:iam::111122223333:role/kmsbridge-operator",
        "arn:aws:iam::111122223333:role/kmsbridge-rotation",
    ] } }]
    error_message = "Only the operator and rotation roles may sign with the CA key."
  }
}

run "lkm_endpoint" {
  command = plan

  variables {
    create_lkm        = true
    lkm_zip_path      = "tests/handler.zip"
    lkm_org_ids       = ["globex.eu"]
    lkm_allowed_cidrs = ["52.0.0.0/16"]
  }

  assert {
    condition     = aws_lambda_function.lkm[0].environment[0].variables["KMSBRIDGE_LKM_ALLOWED_CIDRS"] == "52.0.0.0/16" && aws_lambda_function.lkm[0].environment[0].variables["KMSBRIDGE_ALLOWED_ORGS"] == "globex.eu"
    error_message = "The LKM function knows its orgs and the allowed source ranges."
  }

  assert {
    condition     = one(aws_dynamodb_table.lkm_nonces[0].ttl).attribute_name == "expires_at" && one(aws_dynamodb_table.lkm_nonces[0].ttl).enabled
    error_message = "Hawk nonces expire through a TTL."
  }

  assert {
    condition = [
      for s in jsondecode(data.aws_iam_policy_document.lkm.json).Statement : s.Condition.StringEquals["kms:EncryptionContext:kmsbridge:org"]
      if startswith(s.Sid, "WrapKeksOf")
    ] == ["globex.eu"]
    error_message = "The LKM role may use only its orgs' keys."
  }

  assert {
    condition     = aws_apigatewayv2_route.lkm[0].route_key == "ANY /key-management/{proxy+}"
    error_message = "The HTTP API routes the LKM paths to the function."
  }
}

run "no_org_no_key_no_table_no_schedule" {
  command = plan

  variables {
    orgs                = {}
    export_kms_key_arns = {}
  }

  assert {
    condition = alltrue([
      for doc in [
        data.aws_iam_policy_document.decryptor.json,
        data.aws_iam_policy_document.rotation.json,
        data.aws_iam_policy_document.jobs.json,
      ] : !strcontains(doc, "kms:Decrypt") && !strcontains(doc, "dynamodb:")
    ])
    error_message = "Without orgs the roles may use no customer key and read no table item."
  }

  assert {
    condition     = aws_scheduler_schedule.rotation.state == "DISABLED" && aws_scheduler_schedule.access_canary[0].state == "DISABLED"
    error_message = "Without orgs rotation and the canary do not run (they would be denied a scan)."
  }
}

run "no_canary_no_access_alarms" {
  command = plan

  variables {
    access_canary_schedule_expression = null
  }

  assert {
    condition     = length(aws_scheduler_schedule.access_canary) == 0 && !contains(keys(aws_cloudwatch_metric_alarm.this), "access-revoked")
    error_message = "Without a canary there is no access alarm to watch it."
  }
}

run "no_reservations_for_low_quota_accounts" {
  command = plan

  variables {
    decryptor_reserved_concurrency = null
    rotation_reserved_concurrency  = null
    jobs_reserved_concurrency      = null
  }

  assert {
    condition     = aws_lambda_function.decryptor.reserved_concurrent_executions == -1 && aws_lambda_function.jobs.reserved_concurrent_executions == -1
    error_message = "null means no reservation."
  }
}

run "too_many_orgs_for_an_inline_policy" {
  command = plan

  variables {
    orgs = { for n in range(60) : "org-number-${n}" => [
      "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "arn:aws:kms:eu-central-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ] }
    export_kms_key_arns = {}
  }

  expect_failures = [aws_iam_role_policy.this]
}

run "old_runtime_is_refused" {
  command = plan

  variables {
    lambda_runtime = "python3.11"
  }

  expect_failures = [var.lambda_runtime]
}

run "queue_retention_leaves_time_in_the_dead_letter_queue" {
  command = plan

  variables {
    jobs_message_retention_seconds = 1209600
  }

  expect_failures = [var.jobs_message_retention_seconds]
}

run "pollers_never_exceed_reserved_containers" {
  command = plan

  variables {
    jobs_reserved_concurrency = 3
    jobs_maximum_concurrency  = 4
  }

  expect_failures = [var.jobs_reserved_concurrency]
}

run "export_keys_only_for_served_orgs" {
  command = plan

  variables {
    export_kms_key_arns = { initech = ["arn:aws:kms:eu-west-1:444455556666:key/0000abcd-12ab-34cd-56ef-1234567890ab"] }
  }

  expect_failures = [var.export_kms_key_arns]
}

run "an_operator_is_required" {
  command = plan

  variables {
    create_operator_role = false
  }

  expect_failures = [var.operator_role_arn]
}

run "lkm_needs_source_ranges" {
  command = plan

  variables {
    create_lkm   = true
    lkm_zip_path = "tests/handler.zip"
  }

  expect_failures = [var.lkm_allowed_cidrs]
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
    orgs                = { acme = ["arn:aws:kms:eu-west-1:444455556666:alias/kmsbridge"] }
    export_kms_key_arns = {}
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
