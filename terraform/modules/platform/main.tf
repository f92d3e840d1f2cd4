data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  names = {
    decryptor    = "${var.name_prefix}-decryptor"
    rotation     = "${var.name_prefix}-rotation"
    jobs         = "${var.name_prefix}-jobs"
    scheduler    = "${var.name_prefix}-rotation-scheduler"
    jobs_dlq     = "${var.name_prefix}-jobs-dlq"
    rotation_dlq = "${var.name_prefix}-rotation-dlq"
  }

  # The role policies name their resources by ARNs built from these names rather than by
  # resource attributes, so that `terraform plan` shows every role policy in full before
  # anything is created.
  arns = {
    table             = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.table_name}"
    playback_bucket   = "arn:${local.partition}:s3:::${local.playback_bucket_name}"
    jobs_queue        = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.names.jobs}"
    rotation_dlq      = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.names.rotation_dlq}"
    rotation_function = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.names.rotation}"
  }
  log_stream_arns = {
    for function in ["decryptor", "rotation", "jobs"] :
    function => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${local.names[function]}:*"
  }

  # The orgs served and their customer keys: the only keys the roles may use, and only
  # with one of these org ids in the encryption context (DESIGN.md, wrapped KEK).
  org_ids           = sort(keys(var.orgs))
  customer_key_arns = sort(distinct(flatten(values(var.orgs))))
  serves_orgs       = length(local.org_ids) > 0

  # Item-level actions a KEK lifecycle needs: conditional puts and versioned updates,
  # which TransactWriteItems authorises action by action.
  table_read_actions  = ["dynamodb:GetItem", "dynamodb:Query"]
  table_write_actions = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]

  playback_bucket_name  = coalesce(var.playback_bucket_name, "${var.name_prefix}-playback-${local.account_id}-${local.region}")
  export_bucket_name    = var.export_bucket_arn == null ? null : split(":::", var.export_bucket_arn)[1]
  recording_object_arns = [for arn in var.recording_bucket_arns : "${arn}/*"]

  common_environment = merge(
    {
      KMSBRIDGE_TABLE         = aws_dynamodb_table.keks.name
      POWERTOOLS_SERVICE_NAME = "kmsbridge"
      POWERTOOLS_LOG_LEVEL    = var.log_level
    },
    local.serves_orgs ? { KMSBRIDGE_ALLOWED_ORGS = join(",", local.org_ids) } : {},
  )
}

################################################################################
# Key table
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Point-in-time-recovery.html
################################################################################

resource "aws_dynamodb_table" "keks" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "org"
  range_key                   = "kek"
  deletion_protection_enabled = true

  attribute {
    name = "org"
    type = "S"
  }

  attribute {
    name = "kek"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.table_kms_key_arn
  }

  tags = var.tags
}

################################################################################
# IAM: trust policies
################################################################################

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
data "aws_iam_policy_document" "scheduler_assume_role" {
  statement {
    sid     = "SchedulerAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

################################################################################
# Decryptor: read the table, kms:Decrypt on the customer keys, write playback copies
################################################################################

resource "aws_iam_role" "decryptor" {
  name                 = local.names.decryptor
  description          = "kmsbridge decryptor: unwraps KEKs of the listed orgs for playback"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

data "aws_iam_policy_document" "decryptor" {
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_stream_arns.decryptor]
  }

  # X-Ray has no resource-level permissions for these two actions.
  statement {
    sid       = "WriteTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "ReadKeyTableOfServedOrgs"
      effect    = "Allow"
      actions   = local.table_read_actions
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = local.org_ids
      }
    }
  }

  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "UnwrapKeksOfServedOrgs"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = local.customer_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = local.org_ids
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.recording_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "ReadRecordings"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = local.recording_object_arns
    }
  }

  # GetObject signs the pre-signed URL; AbortMultipartUpload cleans up a failed copy.
  statement {
    sid       = "WritePlaybackCopies"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${local.arns.playback_bucket}/*"]
  }
}

resource "aws_iam_role_policy" "decryptor" {
  name   = "kmsbridge-decryptor"
  role   = aws_iam_role.decryptor.id
  policy = data.aws_iam_policy_document.decryptor.json
}

resource "aws_cloudwatch_log_group" "decryptor" {
  name              = "/aws/lambda/${local.names.decryptor}"
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
  runtime                        = "python3.11"
  handler                        = "handler.handler"
  architectures                  = [var.architecture]
  filename                       = var.decryptor_zip_path
  source_code_hash               = filebase64sha256(var.decryptor_zip_path)
  memory_size                    = var.decryptor_memory_size
  timeout                        = var.decryptor_timeout
  reserved_concurrent_executions = var.decryptor_reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = merge(local.common_environment, {
      KMSBRIDGE_MAX_AGE_SECONDS = tostring(var.max_age_seconds)
      KMSBRIDGE_PLAYBACK_BUCKET = aws_s3_bucket.playback.id
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.decryptor.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.decryptor]
}

# One statement per playback role, keyed by a hash of its ARN so that the list order
# does not matter.
resource "aws_lambda_permission" "playback" {
  for_each = toset(var.playback_role_arns)

  statement_id  = "kmsbridge-playback-${substr(sha256(each.value), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.decryptor.function_name
  principal     = each.value
}

################################################################################
# Rotation: a scheduled function that generates, wraps, verifies and stores new KEKs
################################################################################

resource "aws_iam_role" "rotation" {
  name                 = local.names.rotation
  description          = "kmsbridge KEK rotation: wraps new KEKs of the listed orgs"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

data "aws_iam_policy_document" "rotation" {
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_stream_arns.rotation]
  }

  # X-Ray has no resource-level permissions for these two actions.
  statement {
    sid       = "WriteTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "ReadWriteKeyTableOfServedOrgs"
      effect    = "Allow"
      actions   = local.table_write_actions
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = local.org_ids
      }
    }
  }

  # The ESDK generates the data key under the first ARN and encrypts it under the
  # others; the new blob is unwrapped once to verify it before it is stored.
  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "WrapKeksOfServedOrgs"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = local.customer_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = local.org_ids
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  statement {
    sid       = "SendFailedRunsToDeadLetterQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.arns.rotation_dlq]
  }
}

resource "aws_iam_role_policy" "rotation" {
  name   = "kmsbridge-rotation"
  role   = aws_iam_role.rotation.id
  policy = data.aws_iam_policy_document.rotation.json
}

resource "aws_cloudwatch_log_group" "rotation" {
  name              = "/aws/lambda/${local.names.rotation}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
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
  description      = "kmsbridge KEK rotation: rotates each org's KEK at the end of its cryptoperiod"
  role             = aws_iam_role.rotation.arn
  runtime          = "python3.11"
  handler          = "handler.handler"
  architectures    = [var.architecture]
  filename         = var.rotation_zip_path
  source_code_hash = filebase64sha256(var.rotation_zip_path)
  memory_size      = var.rotation_memory_size
  timeout          = var.rotation_timeout
  # One run at a time: runs never race on an org's active KEK (conditional puts guard it too).
  reserved_concurrent_executions = 1
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = local.common_environment
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.rotation_dlq.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.rotation.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.rotation]
}

resource "aws_iam_role" "scheduler" {
  name                 = local.names.scheduler
  description          = "kmsbridge: lets EventBridge Scheduler start KEK rotation"
  assume_role_policy   = data.aws_iam_policy_document.scheduler_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

# https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "StartRotation"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.arns.rotation_function, "${local.arns.rotation_function}:*"]
  }

  statement {
    sid       = "SendUndeliveredRunsToDeadLetterQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.arns.rotation_dlq]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "kmsbridge-rotation-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "rotation" {
  #checkov:skip=CKV_AWS_297:The schedule carries no payload beyond the target's ARN; there is nothing for a customer managed key to protect.
  name                         = "${var.name_prefix}-kek-rotation"
  description                  = "kmsbridge: rotate KEKs whose cryptoperiod has ended"
  schedule_expression          = var.rotation_schedule_expression
  schedule_expression_timezone = var.rotation_schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.rotation.arn
    role_arn = aws_iam_role.scheduler.arn

    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }

    dead_letter_config {
      arn = aws_sqs_queue.rotation_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

################################################################################
# Jobs: bulk rewrap and bulk export on SQS + Lambda
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
################################################################################

resource "aws_sqs_queue" "jobs_dlq" {
  name                      = local.names.jobs_dlq
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "jobs" {
  name = local.names.jobs
  # Six times the function timeout, as the Lambda documentation advises for SQS sources.
  visibility_timeout_seconds = 6 * var.jobs_timeout
  message_retention_seconds  = var.jobs_message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.jobs_dlq.arn
    maxReceiveCount     = var.jobs_max_receive_count
  })

  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "jobs_dlq" {
  queue_url = aws_sqs_queue.jobs_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

resource "aws_iam_role" "jobs" {
  name                 = local.names.jobs
  description          = "kmsbridge jobs: bulk rewrap and export for the listed orgs"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

data "aws_iam_policy_document" "jobs" {
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_stream_arns.jobs]
  }

  # X-Ray has no resource-level permissions for these two actions.
  statement {
    sid       = "WriteTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Consume the queue (the event source mapping uses the function's role) and fan out
  # one message per recording or KEK onto it.
  statement {
    sid    = "ConsumeAndFanOutJobs"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:SendMessage",
    ]
    resources = [local.arns.jobs_queue]
  }

  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "ReadWriteKeyTableOfServedOrgs"
      effect    = "Allow"
      actions   = local.table_write_actions
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = local.org_ids
      }
    }
  }

  # Rewrap unwraps under the old key and wraps under the new ones; export unwraps.
  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "RewrapAndExportKeksOfServedOrgs"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = local.customer_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = local.org_ids
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.recording_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "ReadRecordings"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = local.recording_object_arns
    }
  }

  # An export job checks which outputs exist (a retried message reuses them), reads the
  # batch results and writes the manifest once all are in.
  dynamic "statement" {
    for_each = var.export_bucket_arn == null ? [] : [1]

    content {
      sid       = "WriteExports"
      effect    = "Allow"
      actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
      resources = ["${var.export_bucket_arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = var.export_bucket_arn == null ? [] : [1]

    content {
      sid       = "ListExports"
      effect    = "Allow"
      actions   = ["s3:ListBucket"]
      resources = [var.export_bucket_arn]
    }
  }
}

resource "aws_iam_role_policy" "jobs" {
  name   = "kmsbridge-jobs"
  role   = aws_iam_role.jobs.id
  policy = data.aws_iam_policy_document.jobs.json
}

resource "aws_cloudwatch_log_group" "jobs" {
  name              = "/aws/lambda/${local.names.jobs}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "jobs" {
  #checkov:skip=CKV_AWS_116:Invoked by its SQS event source mapping; failed messages go to the queue's own dead-letter queue through the redrive policy.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (KMS, DynamoDB, S3, SQS) over TLS with IAM authentication; there is no VPC resource to reach.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and settings, no secret. A customer managed key for it would give the role a KMS permission outside the customer keys.
  function_name                  = local.names.jobs
  description                    = "kmsbridge jobs: bulk KEK rewrap and bulk export, one SQS message per unit of work"
  role                           = aws_iam_role.jobs.arn
  runtime                        = "python3.11"
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
      {
        KMSBRIDGE_MAX_AGE_SECONDS = tostring(var.max_age_seconds)
        KMSBRIDGE_JOBS_QUEUE_URL  = aws_sqs_queue.jobs.url
      },
      local.export_bucket_name == null ? {} : { KMSBRIDGE_EXPORT_BUCKET = local.export_bucket_name },
    )
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.jobs.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.jobs]
}

resource "aws_lambda_event_source_mapping" "jobs" {
  event_source_arn        = aws_sqs_queue.jobs.arn
  function_name           = aws_lambda_function.jobs.arn
  batch_size              = var.jobs_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  # Never more pollers than reserved containers, or throttled batches would count as
  # receives and push healthy messages to the dead-letter queue.
  scaling_config {
    maximum_concurrency = var.jobs_reserved_concurrency
  }
}

################################################################################
# Playback bucket: short-lived plaintext copies behind pre-signed URLs
################################################################################

resource "aws_s3_bucket" "playback" {
  #checkov:skip=CKV_AWS_21:Versioning would keep overwritten and deleted plaintext copies; copies must disappear, and each can be made again from its encrypted recording.
  #checkov:skip=CKV_AWS_144:Plaintext copies must not be replicated anywhere; they live for a day at most.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES-256). SSE-KMS would give the decryptor role KMS permissions outside the org-conditioned customer keys.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: the decryptor returns the pre-signed URL itself.
  bucket = local.playback_bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_public_access_block" "playback" {
  bucket                  = aws_s3_bucket.playback.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "playback" {
  bucket = aws_s3_bucket.playback.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "playback" {
  bucket = aws_s3_bucket.playback.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# S3 expires an object at the first midnight UTC at least one day after it was written,
# the shortest lifetime a rule allows; the pre-signed URLs expire much sooner.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html
resource "aws_s3_bucket_lifecycle_configuration" "playback" {
  bucket = aws_s3_bucket.playback.id

  rule {
    id     = "expire-plaintext-copies"
    status = "Enabled"

    filter {}

    expiration {
      days = 1
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Only TLS, and only the decryptor reads or writes objects: no one else in the account
# can read a plaintext copy, whatever their IAM policy says.
data "aws_iam_policy_document" "playback_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.playback.arn, "${aws_s3_bucket.playback.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "OnlyTheDecryptorTouchesCopies"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.playback.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.decryptor.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "playback" {
  bucket = aws_s3_bucket.playback.id
  policy = data.aws_iam_policy_document.playback_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.playback]
}

resource "aws_s3_bucket_logging" "playback" {
  count = var.playback_access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.playback.id
  target_bucket = var.playback_access_log_bucket
  target_prefix = "${local.playback_bucket_name}/"
}

################################################################################
# Provisioning: a policy for the operator role that runs `kmsbridge org add`
################################################################################

data "aws_iam_policy_document" "provisioning" {
  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "ReadWriteKeyTableOfServedOrgs"
      effect    = "Allow"
      actions   = local.table_write_actions
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = local.org_ids
      }
    }
  }

  dynamic "statement" {
    for_each = local.serves_orgs ? [1] : []

    content {
      sid       = "WrapKeksOfServedOrgs"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = local.customer_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = local.org_ids
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }
}
