data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  org_ids = sort(distinct(var.org_ids))

  # The platform roles reach the key through exactly one of the two modes.
  key_policy_access = var.platform_access_enabled && var.access_mode == "key_policy"
  grant_access      = var.platform_access_enabled && var.access_mode == "grants"

  # Grant operations per platform role: the same actions the key policy statements allow.
  wrap_operations = ["GenerateDataKey", "Encrypt", "Decrypt"]
  platform_grantees = merge(
    {
      decryptor = { arn = var.decryptor_role_arn, operations = ["Decrypt"] }
      rotation  = { arn = var.rotation_role_arn, operations = local.wrap_operations }
      jobs      = { arn = var.jobs_role_arn, operations = ["Decrypt", "Encrypt", "GenerateDataKey"] }
    },
    { for arn in var.provisioning_role_arns : "provisioning-${element(split("/", arn), length(split("/", arn)) - 1)}" => { arn = arn, operations = local.wrap_operations } },
  )

  # One grant per role and org: revoking one grant cuts one role off one org.
  grants = local.grant_access ? {
    for pair in setproduct(keys(local.platform_grantees), local.org_ids) : "${pair[0]}/${pair[1]}" => {
      role       = pair[0]
      org        = pair[1]
      grantee    = local.platform_grantees[pair[0]].arn
      operations = local.platform_grantees[pair[0]].operations
    }
  } : {}
}

################################################################################
# Key
################################################################################

resource "aws_kms_key" "this" {
  description              = var.description
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  key_usage                = "ENCRYPT_DECRYPT"
  is_enabled               = var.key_enabled
  enable_key_rotation      = true
  rotation_period_in_days  = var.rotation_period_in_days
  deletion_window_in_days  = var.deletion_window_in_days
  multi_region             = var.multi_region
  policy                   = data.aws_iam_policy_document.this.json
  tags                     = var.tags

  lifecycle {
    precondition {
      condition = alltrue([
        for arn in concat([var.decryptor_role_arn, var.rotation_role_arn, var.jobs_role_arn], var.provisioning_role_arns) :
        split(":", arn)[4] == var.platform_account_id
      ])
      error_message = "Every platform role ARN must belong to platform_account_id."
    }
  }
}

resource "aws_kms_alias" "this" {
  name          = var.alias_name
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# Key policy
# https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html
################################################################################

# What stays when the platform is cut off: the account and its key administrators.
data "aws_iam_policy_document" "administration" {
  #checkov:skip=CKV_AWS_109:Key policy: Resource "*" means this key only. The account root statement is the AWS default that keeps the key manageable (no lockout).
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" means this key only; write access is limited to the customer's own account and key administrators.
  #checkov:skip=CKV_AWS_356:Key policy: Resource "*" is the only form a key policy accepts and means this key.

  # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
  statement {
    sid       = "EnableAccountIamPolicies"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-administrators
  # No kms:CreateGrant: administrators manage the key, they do not hand out its use.
  dynamic "statement" {
    for_each = length(var.key_administrator_arns) > 0 ? [1] : []

    content {
      sid    = "KeyAdministrators"
      effect = "Allow"
      actions = [
        "kms:CancelKeyDeletion",
        "kms:CreateAlias",
        "kms:DeleteAlias",
        "kms:DescribeKey",
        "kms:DisableKey",
        "kms:DisableKeyRotation",
        "kms:EnableKey",
        "kms:EnableKeyRotation",
        "kms:GetKeyPolicy",
        "kms:GetKeyRotationStatus",
        "kms:ListAliases",
        "kms:ListGrants",
        "kms:ListKeyPolicies",
        "kms:ListKeyRotations",
        "kms:ListResourceTags",
        "kms:PutKeyPolicy",
        "kms:RetireGrant",
        "kms:RevokeGrant",
        "kms:RotateKeyOnDemand",
        "kms:ScheduleKeyDeletion",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:UpdateAlias",
        "kms:UpdateKeyDescription",
      ]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = var.key_administrator_arns
      }
    }
  }
}

# The applied policy: administration, then one statement per platform role, each usable
# only for KEK wraps of the listed orgs and only from the platform account.
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context-key
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-caller-account
data "aws_iam_policy_document" "this" {
  source_policy_documents = [data.aws_iam_policy_document.administration.json]

  dynamic "statement" {
    for_each = local.key_policy_access ? [1] : []

    content {
      sid       = "PlatformDecryptorDecrypt"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [var.decryptor_role_arn]
      }

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

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [var.platform_account_id]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [var.platform_account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = local.key_policy_access ? [1] : []

    content {
      sid       = "PlatformRotationWrapKeks"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [var.rotation_role_arn]
      }

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

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [var.platform_account_id]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [var.platform_account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = local.key_policy_access ? [1] : []

    content {
      sid       = "PlatformJobsRewrapExport"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [var.jobs_role_arn]
      }

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

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [var.platform_account_id]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [var.platform_account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = local.key_policy_access && length(var.provisioning_role_arns) > 0 ? [1] : []

    content {
      sid       = "PlatformProvisioningWrapKeks"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = var.provisioning_role_arns
      }

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

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [var.platform_account_id]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [var.platform_account_id]
      }
    }
  }

  # Revocation by period (DESIGN.md, issue 11): each KEK covers one cryptoperiod and KMS
  # sees its id in the encryption context of every unwrap, so denying those ids stops
  # playback of exactly those periods. An explicit Deny also overrides grants.
  # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context
  dynamic "statement" {
    for_each = length(var.revoked_kek_ids) > 0 ? [1] : []

    content {
      sid       = "DenyDecryptRevokedKekPeriods"
      effect    = "Deny"
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [var.decryptor_role_arn]
      }

      condition {
        test     = "ForAnyValue:StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:kek"
        values   = var.revoked_kek_ids
      }
    }
  }
}

################################################################################
# Grants (access_mode = "grants")
# https://docs.aws.amazon.com/kms/latest/developerguide/grants.html
################################################################################

resource "aws_kms_grant" "platform" {
  for_each = local.grants

  # Grant names allow fewer characters than org ids and role names.
  name              = replace("kmsbridge-${each.value.role}-${each.value.org}", "/[^A-Za-z0-9:/_-]/", "_")
  key_id            = aws_kms_key.this.key_id
  grantee_principal = each.value.grantee
  operations        = each.value.operations
  retire_on_delete  = false

  constraints {
    encryption_context_subset = {
      "kmsbridge:org"     = each.value.org
      "kmsbridge:purpose" = "kek"
    }
  }
}
