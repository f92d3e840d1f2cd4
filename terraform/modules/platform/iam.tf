################################################################################
# Trust policies
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

# Who may become the operator: the listed principals, else any principal of the platform
# account that its own IAM policy allows to sts:AssumeRole this role.
data "aws_iam_policy_document" "operator_assume_role" {
  statement {
    sid     = "OperatorsAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = length(var.operator_trusted_principal_arns) > 0 ? var.operator_trusted_principal_arns : ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

################################################################################
# Roles
################################################################################

resource "aws_iam_role" "decryptor" {
  name                 = local.names.decryptor
  description          = "kmsbridge decryptor: unwraps KEKs of the listed orgs for playback"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role" "rotation" {
  name                 = local.names.rotation
  description          = "kmsbridge KEK rotation and access canary for the listed orgs"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role" "jobs" {
  name                 = local.names.jobs
  description          = "kmsbridge jobs: bulk rewrap and export for the listed orgs"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role" "scheduler" {
  name                 = local.names.scheduler
  description          = "kmsbridge: lets EventBridge Scheduler start KEK rotation and the access canary"
  assume_role_policy   = data.aws_iam_policy_document.scheduler_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role" "operator" {
  count = var.create_operator_role ? 1 : 0

  name                 = local.names.operator
  description          = "kmsbridge operator: org add, kek import and rewrap, job submission"
  assume_role_policy   = data.aws_iam_policy_document.operator_assume_role.json
  max_session_duration = 3600
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

################################################################################
# Decryptor: read the table, kms:Decrypt per org, read recordings, playback copies
################################################################################

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
    for_each = var.orgs

    content {
      sid       = "UnwrapKeksOf${local.org_sid[statement.key]}"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = [statement.key]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.serves_recording_reads ? [1] : []

    content {
      sid       = "ReadRecordings"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = local.recording_object_arns
    }
  }

  # Without ListBucket, S3 answers a missing object with 403, not 404, and a missing
  # recording would be reported as a refusal instead of NOT_FOUND.
  dynamic "statement" {
    for_each = local.serves_recording_reads ? [1] : []

    content {
      sid       = "ListRecordings"
      effect    = "Allow"
      actions   = ["s3:ListBucket"]
      resources = var.recording_bucket_arns
    }
  }

  # GetObject signs the pre-signed URL; AbortMultipartUpload cleans up a failed copy;
  # List and Delete remove an org's copies when its access is refused.
  statement {
    sid       = "WritePlaybackCopies"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = ["${local.arns.playback_bucket}/*"]
  }

  statement {
    sid       = "ListPlaybackCopies"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.arns.playback_bucket]
  }
}

################################################################################
# Rotation and access canary: wrap new KEKs per org, sign their certificates
################################################################################

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

  # The playback sweep: list the copies, delete the expired ones.
  statement {
    sid       = "SweepPlaybackCopies"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.arns.playback_bucket}/playback/*"]
  }

  statement {
    sid       = "ListPlaybackCopies"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.arns.playback_bucket]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["playback/*"]
    }
  }

  # Reads and writes KEK items; the canary writes the org settings item (last access error).
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
  # others; the new blob is unwrapped once to verify it before it is stored (and the
  # access canary unwraps the active KEK).
  dynamic "statement" {
    for_each = var.orgs

    content {
      sid       = "WrapKeksOf${local.org_sid[statement.key]}"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = [statement.key]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.create_ca_key ? [1] : []

    content {
      sid       = "SignKekCertificates"
      effect    = "Allow"
      actions   = ["kms:Sign", "kms:GetPublicKey"]
      resources = [local.arns.any_key]

      condition {
        test     = "ForAnyValue:StringEquals"
        variable = "kms:ResourceAliases"
        values   = [local.names.ca_alias]
      }
    }
  }

  # The platform CA's item (partition key "#platform": no org id has a "#") holds the CA
  # certificate that each new KEK's certificate names as its issuer. Only while it serves
  # orgs, like the rest of its table access.
  dynamic "statement" {
    for_each = local.create_ca_key && local.serves_orgs ? [1] : []

    content {
      sid       = "ReadPlatformCaItem"
      effect    = "Allow"
      actions   = ["dynamodb:GetItem"]
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = ["#platform"]
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

################################################################################
# Jobs: consume the queue, rewrap per org, export to the org's registered KMS keys
################################################################################

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

  # The event source mapping polls with the function's role. No SendMessage: the
  # operator submits every job (the queue policy allows no one else).
  statement {
    sid    = "ConsumeJobs"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
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
    for_each = var.orgs

    content {
      sid       = "RewrapKeksOf${local.org_sid[statement.key]}"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = [statement.key]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  # Export to a customer's KMS key: one GenerateDataKey per recording, context
  # "purpose" export and the org (kmsbridge.export.archive).
  dynamic "statement" {
    for_each = local.export_kms_keys

    content {
      sid       = "ExportToKmsKeysOf${local.org_sid[statement.key]}"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = [statement.key]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["export"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.serves_recording_reads ? [1] : []

    content {
      sid       = "ReadRecordings"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = local.recording_object_arns
    }
  }

  dynamic "statement" {
    for_each = local.serves_recording_reads ? [1] : []

    content {
      sid       = "ListRecordings"
      effect    = "Allow"
      actions   = ["s3:ListBucket"]
      resources = var.recording_bucket_arns
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

################################################################################
# Scheduler: start rotation and the access canary
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
################################################################################

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

################################################################################
# Operator: `kmsbridge org add`, `kek import|rewrap`, `org list`, job submission
################################################################################

data "aws_iam_policy_document" "operator" {
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

  # `org list` and `kek rewrap --all-orgs` read every item: a Scan has no partition key
  # for dynamodb:LeadingKeys to check. The items hold public keys and wrapped KEKs only.
  statement {
    sid       = "ListOrgs"
    effect    = "Allow"
    actions   = ["dynamodb:Scan"]
    resources = [local.arns.table]
  }

  dynamic "statement" {
    for_each = var.orgs

    content {
      sid       = "WrapKeksOf${local.org_sid[statement.key]}"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = [statement.key]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = ["kek"]
      }
    }
  }

  statement {
    sid       = "SubmitJobs"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.arns.jobs_queue]
  }

  # `export --job` lists the recordings under a prefix and records the job in its folder.
  dynamic "statement" {
    for_each = local.serves_recording_reads ? [1] : []

    content {
      sid       = "ListRecordings"
      effect    = "Allow"
      actions   = ["s3:ListBucket"]
      resources = var.recording_bucket_arns
    }
  }

  dynamic "statement" {
    for_each = var.export_bucket_arn == null ? [] : [1]

    content {
      sid       = "RecordExportJobs"
      effect    = "Allow"
      actions   = ["s3:PutObject", "s3:GetObject", "s3:ListBucket"]
      resources = [var.export_bucket_arn, "${var.export_bucket_arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = local.create_ca_key ? [1] : []

    content {
      sid       = "SignKekCertificates"
      effect    = "Allow"
      actions   = ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"]
      resources = [local.arns.any_key]

      condition {
        test     = "ForAnyValue:StringEquals"
        variable = "kms:ResourceAliases"
        values   = [local.names.ca_alias]
      }
    }
  }

  # `kmsbridge ca create` writes the platform CA's item; org add, kek rotate, ca issue and
  # encryption from the table read it.
  dynamic "statement" {
    for_each = local.create_ca_key ? [1] : []

    content {
      sid       = "ReadWritePlatformCaItem"
      effect    = "Allow"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = ["#platform"]
      }
    }
  }
}

################################################################################
# Role policies. IAM allows 10,240 characters of inline policy per role: each org adds
# one statement to each role (README, "Limits"), checked here before IAM refuses it.
################################################################################

locals {
  role_policies = merge(
    {
      decryptor = data.aws_iam_policy_document.decryptor.json
      rotation  = data.aws_iam_policy_document.rotation.json
      jobs      = data.aws_iam_policy_document.jobs.json
      scheduler = data.aws_iam_policy_document.scheduler.json
    },
    var.create_operator_role ? { operator = data.aws_iam_policy_document.operator.json } : {},
    var.create_lkm ? { lkm = data.aws_iam_policy_document.lkm.json } : {},
  )
  role_ids = {
    decryptor = aws_iam_role.decryptor.id
    rotation  = aws_iam_role.rotation.id
    jobs      = aws_iam_role.jobs.id
    scheduler = aws_iam_role.scheduler.id
    operator  = one(aws_iam_role.operator[*].id)
    lkm       = one(aws_iam_role.lkm[*].id)
  }
}

resource "aws_iam_role_policy" "this" {
  for_each = local.role_policies

  name   = "kmsbridge-${each.key}"
  role   = local.role_ids[each.key]
  policy = each.value

  lifecycle {
    precondition {
      condition     = length(jsonencode(jsondecode(each.value))) <= 10240
      error_message = "The ${each.key} role's policy is over IAM's 10,240-character limit for inline policies: too many orgs or key ARNs for one platform (README, \"Limits\")."
    }
  }
}
