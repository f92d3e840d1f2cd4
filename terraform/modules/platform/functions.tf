################################################################################
# Lambda functions: decryptor, rotation (and access canary), jobs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(concat(["decryptor", "rotation", "jobs"], var.create_lkm ? ["lkm"] : []))

  name              = "/aws/lambda/${local.names[each.key]}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "decryptor" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the playback services, which get every error in the response; a dead-letter queue only serves asynchronous invocations.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (KMS, DynamoDB, S3) over TLS with IAM authentication; there is no VPC resource to reach.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and settings, no secret. A customer managed key for it would give the role a KMS permission outside the customer keys.
  function_name                  = local.names.decryptor
  description                    = "kmsbridge decryptor: unwraps KEKs just in time for playback"
  role                           = aws_iam_role.decryptor.arn
  runtime                        = var.lambda_runtime
  handler                        = "handler.handler"
  architectures                  = [var.architecture]
  filename                       = var.decryptor_zip_path
  source_code_hash               = filebase64sha256(var.decryptor_zip_path)
  memory_size                    = var.decryptor_memory_size
  timeout                        = var.decryptor_timeout
  reserved_concurrent_executions = var.decryptor_reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn
  # Every code or configuration change publishes a version; callers invoke the alias.
  publish = true

  dynamic "snap_start" {
    for_each = var.decryptor_snapstart ? [1] : []

    content {
      apply_on = "PublishedVersions"
    }
  }

  environment {
    variables = merge(local.common_environment, {
      KMSBRIDGE_MAX_AGE_SECONDS = tostring(var.max_age_seconds)
      KMSBRIDGE_PLAYBACK_BUCKET = aws_s3_bucket.playback.id
      KMSBRIDGE_REQUIRE_SEALED  = var.decryptor_require_sealed ? "1" : "0"
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this["decryptor"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

# What the playback services invoke: a published version, restored from its SnapStart
# snapshot when that is on.
resource "aws_lambda_alias" "decryptor" {
  name             = var.decryptor_alias_name
  description      = "kmsbridge decryptor: the version the playback services invoke"
  function_name    = aws_lambda_function.decryptor.function_name
  function_version = aws_lambda_function.decryptor.version
}

# One statement per playback role, keyed by a hash of its ARN so that the list order
# does not matter; each may invoke the alias only.
resource "aws_lambda_permission" "playback" {
  for_each = toset(var.playback_role_arns)

  statement_id  = "kmsbridge-playback-${substr(sha256(each.value), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.decryptor.function_name
  qualifier     = aws_lambda_alias.decryptor.name
  principal     = each.value
}

resource "aws_sqs_queue" "rotation_dlq" {
  name                      = local.names.rotation_dlq
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_lambda_function" "rotation" {
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (KMS, DynamoDB, SQS) over TLS with IAM authentication; there is no VPC resource to reach.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and settings, no secret. A customer managed key for it would give the role a KMS permission outside the customer keys.
  function_name    = local.names.rotation
  description      = "kmsbridge KEK rotation and access canary: rotates each org's KEK at the end of its cryptoperiod, checks each org's access"
  role             = aws_iam_role.rotation.arn
  runtime          = var.lambda_runtime
  handler          = "handler.handler"
  architectures    = [var.architecture]
  filename         = var.rotation_zip_path
  source_code_hash = filebase64sha256(var.rotation_zip_path)
  memory_size      = var.rotation_memory_size
  timeout          = var.rotation_timeout
  # 1 (the default): one run at a time, so runs never race on an org's active KEK
  # (conditional puts guard it too). null: no reservation (README, "Reserved concurrency").
  reserved_concurrent_executions = var.rotation_reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = merge(
      local.common_environment,
      local.create_ca_key ? { KMSBRIDGE_CA_KEY_ARN = aws_kms_key.platform_ca[0].arn } : {},
      # Every run deletes the decryptor's expired playback copies.
      { KMSBRIDGE_PLAYBACK_BUCKET = aws_s3_bucket.playback.id },
    )
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.rotation_dlq.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this["rotation"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

# Both schedules stay disabled while no org is served: the rotation function would
# have no org to read and would be denied a scan of the table.
resource "aws_scheduler_schedule" "rotation" {
  #checkov:skip=CKV_AWS_297:The schedule carries no payload beyond the task name; there is nothing for a customer managed key to protect.
  name                         = "${var.name_prefix}-kek-rotation"
  description                  = "kmsbridge: rotate KEKs whose cryptoperiod has ended"
  schedule_expression          = var.rotation_schedule_expression
  schedule_expression_timezone = var.rotation_schedule_timezone
  state                        = local.serves_orgs ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.rotation.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ task = "rotate" })

    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }

    dead_letter_config {
      arn = aws_sqs_queue.rotation_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

# The access canary: the rotation function unwraps each served org's active KEK through
# KMS (no cache), records the org's last access error and time in its settings item and
# emits the OrgAccessRevoked / OrgAccessUnavailable metrics the alarms watch.
resource "aws_scheduler_schedule" "access_canary" {
  #checkov:skip=CKV_AWS_297:The schedule carries no payload beyond the task name; there is nothing for a customer managed key to protect.
  count = var.access_canary_schedule_expression == null ? 0 : 1

  name                         = "${var.name_prefix}-access-canary"
  description                  = "kmsbridge: check each org's access to its KMS keys"
  schedule_expression          = var.access_canary_schedule_expression
  schedule_expression_timezone = var.rotation_schedule_timezone
  state                        = local.serves_orgs ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.rotation.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ task = "access-canary" })

    retry_policy {
      maximum_retry_attempts       = 1
      maximum_event_age_in_seconds = 600
    }

    dead_letter_config {
      arn = aws_sqs_queue.rotation_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_function" "jobs" {
  #checkov:skip=CKV_AWS_116:Invoked by its SQS event source mapping; failed messages go to the queue's own dead-letter queue through the redrive policy.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (KMS, DynamoDB, S3, SQS) over TLS with IAM authentication; there is no VPC resource to reach.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and settings, no secret. A customer managed key for it would give the role a KMS permission outside the customer keys.
  function_name                  = local.names.jobs
  description                    = "kmsbridge jobs: bulk KEK rewrap and bulk export, one SQS message per unit of work"
  role                           = aws_iam_role.jobs.arn
  runtime                        = var.lambda_runtime
  handler                        = "handler.handler"
  architectures                  = [var.architecture]
  filename                       = var.jobs_zip_path
  source_code_hash               = filebase64sha256(var.jobs_zip_path)
  memory_size                    = var.jobs_memory_size
  timeout                        = var.jobs_timeout
  reserved_concurrent_executions = var.jobs_reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = merge(
      local.common_environment,
      { KMSBRIDGE_MAX_AGE_SECONDS = tostring(var.max_age_seconds) },
      # The jobs handler refuses an export to any other bucket.
      local.export_bucket_name == null ? {} : { KMSBRIDGE_EXPORT_BUCKET = local.export_bucket_name },
    )
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this["jobs"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_event_source_mapping" "jobs" {
  event_source_arn        = aws_sqs_queue.jobs.arn
  function_name           = aws_lambda_function.jobs.arn
  batch_size              = var.jobs_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  # Never more pollers than reserved containers, or throttled batches would count as
  # receives and push healthy messages to the dead-letter queue.
  scaling_config {
    maximum_concurrency = var.jobs_maximum_concurrency
  }
}

# The playback sweep: the rotation function deletes the decryptor's expired playback
# copies, so a plaintext copy outlives its URL by at most this schedule's period.
resource "aws_scheduler_schedule" "playback_sweep" {
  #checkov:skip=CKV_AWS_297:The schedule carries no payload beyond the task name; there is nothing for a customer managed key to protect.
  count = var.playback_sweep_schedule_expression == null ? 0 : 1

  name                         = "${var.name_prefix}-playback-sweep"
  description                  = "kmsbridge: delete expired playback copies"
  schedule_expression          = var.playback_sweep_schedule_expression
  schedule_expression_timezone = var.rotation_schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.rotation.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ task = "sweep-playback" })

    retry_policy {
      maximum_retry_attempts       = 1
      maximum_event_age_in_seconds = 600
    }

    dead_letter_config {
      arn = aws_sqs_queue.rotation_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.this]
}
