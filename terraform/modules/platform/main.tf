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
    lkm          = "${var.name_prefix}-lkm"
    operator     = "${var.name_prefix}-operator"
    scheduler    = "${var.name_prefix}-rotation-scheduler"
    jobs_dlq     = "${var.name_prefix}-jobs-dlq"
    rotation_dlq = "${var.name_prefix}-rotation-dlq"
    lkm_nonces   = "${var.name_prefix}-lkm-nonces"
    alarms       = "${var.name_prefix}-alarms"
    ca_alias     = "alias/${var.name_prefix}-platform-ca"
  }

  # The policies name their resources by ARNs built from these names rather than by
  # resource attributes, so that `terraform plan` shows every policy in full before
  # anything is created (and the customers' key policies can name the roles at once).
  arns = {
    table             = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.table_name}"
    lkm_nonce_table   = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.names.lkm_nonces}"
    playback_bucket   = "arn:${local.partition}:s3:::${local.playback_bucket_name}"
    jobs_queue        = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.names.jobs}"
    rotation_dlq      = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.names.rotation_dlq}"
    rotation_function = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.names.rotation}"
    any_key           = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
  }
  role_arns = {
    for role in ["decryptor", "rotation", "jobs", "lkm", "operator"] :
    role => "arn:${local.partition}:iam::${local.account_id}:role/${local.names[role]}"
  }
  log_stream_arns = {
    for function in ["decryptor", "rotation", "jobs", "lkm"] :
    function => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${local.names[function]}:*"
  }

  # The orgs served and their customer keys. Every KMS permission is one statement per
  # org that pairs that org's keys with that org id in the encryption context condition
  # (DESIGN.md, "Trust boundaries"): never a cross product of orgs and keys.
  org_ids     = sort(keys(var.orgs))
  serves_orgs = length(local.org_ids) > 0
  # Statement ids allow only letters and digits; the hash keeps "a.b" and "a-b" apart.
  org_sid = { for org in local.org_ids : org => "${replace(org, "/[^A-Za-z0-9]/", "")}${substr(sha256(org), 0, 8)}" }

  export_kms_keys = { for org, arns in var.export_kms_key_arns : org => sort(distinct(arns)) if length(arns) > 0 }
  lkm_orgs        = var.create_lkm ? { for org in coalesce(var.lkm_org_ids, local.org_ids) : org => var.orgs[org] } : {}

  operator_role_arn = var.create_operator_role ? local.role_arns.operator : var.operator_role_arn
  create_ca_key     = var.create_platform_ca_key

  # Item-level actions a KEK lifecycle needs: conditional puts and versioned updates,
  # which TransactWriteItems authorises action by action.
  table_read_actions  = ["dynamodb:GetItem", "dynamodb:Query"]
  table_write_actions = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]

  playback_bucket_name   = coalesce(var.playback_bucket_name, "${var.name_prefix}-playback-${local.account_id}-${local.region}")
  export_bucket_name     = var.export_bucket_arn == null ? null : split(":::", var.export_bucket_arn)[1]
  recording_object_arns  = [for arn in var.recording_bucket_arns : "${arn}/*"]
  serves_recording_reads = length(var.recording_bucket_arns) > 0

  # Read by kmsbridge.services in every function.
  common_environment = merge(
    { KMSBRIDGE_TABLE = aws_dynamodb_table.keks.name },
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

  lifecycle {
    # The table holds every org's wrapped KEKs: losing it loses every recording. Teardown
    # is a deliberate, documented procedure (README, "Teardown").
    prevent_destroy = true
  }
}

################################################################################
# Jobs queue: bulk rewrap and bulk export on SQS + Lambda
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

# Only the operator role submits jobs: a job message is a request to rewrap or export an
# org's recordings, so no other principal of the account may send one, whatever its IAM
# policy says. The jobs function only consumes.
data "aws_iam_policy_document" "jobs_queue" {
  statement {
    sid       = "OnlyTheOperatorSendsJobs"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [local.arns.jobs_queue]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [local.operator_role_arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.arns.jobs_queue]

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
}

resource "aws_sqs_queue_policy" "jobs" {
  queue_url = aws_sqs_queue.jobs.id
  policy    = data.aws_iam_policy_document.jobs_queue.json
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
# the shortest lifetime a rule allows; the pre-signed URLs expire much sooner, and the
# decryptor deletes an org's copies when its access is refused. Versioning is off, so
# there are no noncurrent versions to expire.
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

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# TLS 1.2 or later only, and only the decryptor reads or writes objects: no one else in
# the account can read a plaintext copy, whatever their IAM policy says.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html#example-object-tls-version
data "aws_iam_policy_document" "playback_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.arns.playback_bucket, "${local.arns.playback_bucket}/*"]

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
    sid       = "DenyTlsBelow12"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.arns.playback_bucket, "${local.arns.playback_bucket}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  statement {
    sid       = "OnlyTheDecryptorTouchesCopies"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.arns.playback_bucket}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [local.role_arns.decryptor]
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
