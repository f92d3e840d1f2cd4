data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  org_ids   = sort(distinct(var.org_ids))

  # The platform roles reach the key through exactly one of the two modes.
  key_policy_access = var.platform_access_enabled && var.access_mode == "key_policy"
  grant_access      = var.platform_access_enabled && var.access_mode == "grants"

  # Key policy principals are the platform account's root with an aws:PrincipalArn
  # condition, not the role ARNs: KMS turns a role principal into the role's unique id, so
  # a recreated role would silently lose access, and a named role must exist before the key.
  # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html#key-policy-elements
  platform_root = "arn:${local.partition}:iam::${var.platform_account_id}:root"

  wrap_actions = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"]

  # One entry per platform role: who, which actions, under which kmsbridge:purpose.
  platform_roles = merge(
    {
      decryptor = { sid = "PlatformDecryptorUnwrapKeks", arns = [var.decryptor_role_arn], actions = ["kms:Decrypt"], purpose = "kek" }
      rotation  = { sid = "PlatformRotationWrapKeks", arns = [var.rotation_role_arn], actions = local.wrap_actions, purpose = "kek" }
      jobs      = { sid = "PlatformJobsRewrapKeks", arns = [var.jobs_role_arn], actions = local.wrap_actions, purpose = "kek" }
    },
    length(var.operator_role_arns) == 0 ? {} : {
      operator = { sid = "PlatformOperatorWrapKeks", arns = var.operator_role_arns, actions = local.wrap_actions, purpose = "kek" }
    },
    var.lkm_role_arn == null ? {} : {
      lkm = { sid = "PlatformLkmWrapKeks", arns = [var.lkm_role_arn], actions = local.wrap_actions, purpose = "kek" }
    },
    # Export to this key: the jobs function encrypts each exported recording's data key
    # under it (one GenerateDataKey, context purpose=export).
    var.export_enabled ? {
      jobs_export = { sid = "PlatformJobsExportToThisKey", arns = [var.jobs_role_arn], actions = ["kms:GenerateDataKey"], purpose = "export" }
    } : {},
  )

  # One grant per role ARN and org: revoking one grant cuts one role off one org.
  grantees = merge([
    for role, access in local.platform_roles : {
      for arn in access.arns : "${role == "operator" ? "operator-${element(split("/", arn), length(split("/", arn)) - 1)}" : role}" => {
        arn        = arn
        operations = [for action in access.actions : trimprefix(action, "kms:")]
        purpose    = access.purpose
      }
    }
  ]...)
  grants = local.grant_access ? {
    for pair in setproduct(keys(local.grantees), local.org_ids) : "${pair[0]}/${pair[1]}" => merge(local.grantees[pair[0]], { role = pair[0], org = pair[1] })
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
  # ForceNew: changing it after the first apply would plan a new key and the deletion of
  # this one; prevent_destroy below refuses that plan.
  multi_region = var.multi_region
  policy       = data.aws_iam_policy_document.this.json
  tags         = var.tags

  lifecycle {
    # Destroying the key makes every recording of its orgs unreadable after the deletion
    # window. Teardown is a deliberate, documented procedure (README, "Teardown").
    prevent_destroy = true

    precondition {
      condition = alltrue([
        for arn in concat([var.decryptor_role_arn, var.rotation_role_arn, var.jobs_role_arn], var.operator_role_arns, compact([var.lkm_role_arn])) :
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

# What stays when the platform is cut off: the account, its key administrators, and the
# revoked-period deny.
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
      identifiers = ["arn:${local.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
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

  # Revocation by period: each KEK covers one cryptoperiod and KMS sees its id in the
  # encryption context of every unwrap, so denying those ids stops exactly those periods,
  # for every principal (playback, export, operators, grants alike). The context key is
  # single-valued: StringEquals, no set operator.
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
        identifiers = ["*"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:kek"
        values   = var.revoked_kek_ids
      }
    }
  }
}

# The applied policy: administration, then one statement per platform role, each usable
# only by that role of the platform account, only for the listed orgs and one purpose.
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context-key
# https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-caller-account
data "aws_iam_policy_document" "this" {
  source_policy_documents   = concat([data.aws_iam_policy_document.administration.json], var.source_policy_documents)
  override_policy_documents = var.override_policy_documents

  dynamic "statement" {
    for_each = local.key_policy_access ? local.platform_roles : {}

    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [local.platform_root]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalArn"
        values   = statement.value.arns
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [var.platform_account_id]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:org"
        values   = local.org_ids
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:kmsbridge:purpose"
        values   = [statement.value.purpose]
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
  grantee_principal = each.value.arn
  operations        = each.value.operations
  retire_on_delete  = false

  constraints {
    encryption_context_subset = {
      "kmsbridge:org"     = each.value.org
      "kmsbridge:purpose" = each.value.purpose
    }
  }
}
