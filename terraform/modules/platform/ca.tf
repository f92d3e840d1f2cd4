################################################################################
# Platform CA (create_platform_ca_key): the key that signs every generated KEK's
# certificate. DESIGN.md, "KEK certificate": ECC_NIST_P384, used only through kms:Sign.
################################################################################

resource "aws_kms_key" "platform_ca" {
  #checkov:skip=CKV_AWS_7:Asymmetric KMS keys cannot rotate automatically; a new CA key means new certificates for every KEK (kmsbridge ca issue --all-orgs).
  count = local.create_ca_key ? 1 : 0

  description              = "kmsbridge platform CA: signs KEK certificates"
  customer_master_key_spec = "ECC_NIST_P384"
  key_usage                = "SIGN_VERIFY"
  deletion_window_in_days  = 30
  policy                   = data.aws_iam_policy_document.platform_ca.json
  tags                     = var.tags

  lifecycle {
    # Encryptors pin this CA: a new key breaks every pinned trust anchor.
    prevent_destroy = true
  }
}

resource "aws_kms_alias" "platform_ca" {
  count = local.create_ca_key ? 1 : 0

  name          = local.names.ca_alias
  target_key_id = aws_kms_key.platform_ca[0].key_id
}

data "aws_iam_policy_document" "platform_ca" {
  #checkov:skip=CKV_AWS_109:Key policy: Resource "*" means this key only. The account root statement is the AWS default that keeps the key manageable (no lockout).
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" means this key only; write access is limited to this account.
  #checkov:skip=CKV_AWS_356:Key policy: Resource "*" is the only form a key policy accepts and means this key.

  # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
  statement {
    sid       = "EnableAccountIamPolicies"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Whatever IAM policies say, only the operator (`ca create`, `ca issue`, `org add`) and
  # rotation roles sign: a certificate from this CA is what encryptors trust.
  statement {
    sid       = "OnlyOperatorAndRotationSign"
    effect    = "Deny"
    actions   = ["kms:Sign"]
    resources = ["*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = [local.operator_role_arn, local.role_arns.rotation]
    }
  }
}
