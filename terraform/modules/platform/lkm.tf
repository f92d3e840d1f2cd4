################################################################################
# Genesys Cloud LKM endpoint (create_lkm): the Local Key Manager contract, Hawk
# authenticated, behind an HTTP API. DESIGN.md, "The Genesys Cloud LKM endpoint".
################################################################################

resource "aws_iam_role" "lkm" {
  count = var.create_lkm ? 1 : 0

  name                 = local.names.lkm
  description          = "kmsbridge Genesys Cloud LKM endpoint: key pairs and decrypts for the listed orgs"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

data "aws_iam_policy_document" "lkm" {
  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local.log_stream_arns.lkm]
  }

  # X-Ray has no resource-level permissions for these two actions.
  statement {
    sid       = "WriteTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Key pairs are KEKs of the org (the Hawk credential names it): created and read here.
  dynamic "statement" {
    for_each = length(local.lkm_orgs) > 0 ? [1] : []

    content {
      sid       = "ReadWriteKeyTableOfLkmOrgs"
      effect    = "Allow"
      actions   = local.table_write_actions
      resources = [local.arns.table]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "dynamodb:LeadingKeys"
        values   = sort(keys(local.lkm_orgs))
      }
    }
  }

  dynamic "statement" {
    for_each = local.lkm_orgs

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

  # A conditional put per Hawk nonce: a replayed request finds its nonce and is refused.
  statement {
    sid       = "RecordHawkNonces"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem"]
    resources = [local.arns.lkm_nonce_table]
  }
}

# Hawk nonces, each kept until its timestamp window has passed (TTL attribute
# expires_at). A table of its own: a TTL on the key table could delete KEK items.
resource "aws_dynamodb_table" "lkm_nonces" {
  #checkov:skip=CKV_AWS_28:Nonces live for minutes (the Hawk timestamp window); a restore would bring back nothing worth having.
  #checkov:skip=CKV_AWS_119:Holds random nonces and timestamps only; a customer managed key would give the LKM role a KMS permission outside the customer keys.
  count = var.create_lkm ? 1 : 0

  name         = local.names.lkm_nonces
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "nonce"

  attribute {
    name = "nonce"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = var.tags
}

resource "aws_lambda_function" "lkm" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the HTTP API, which returns every error to Genesys Cloud; a dead-letter queue only serves asynchronous invocations.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (KMS, DynamoDB) over TLS with IAM authentication; there is no VPC resource to reach.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and settings, no secret. A customer managed key for it would give the role a KMS permission outside the customer keys.
  count = var.create_lkm ? 1 : 0

  function_name                  = local.names.lkm
  description                    = "kmsbridge Genesys Cloud LKM endpoint (Hawk authenticated)"
  role                           = aws_iam_role.lkm[0].arn
  runtime                        = var.lambda_runtime
  handler                        = "handler.handler"
  architectures                  = [var.architecture]
  filename                       = var.lkm_zip_path
  source_code_hash               = filebase64sha256(var.lkm_zip_path)
  memory_size                    = var.decryptor_memory_size
  timeout                        = 29
  reserved_concurrent_executions = var.lkm_reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = {
      KMSBRIDGE_TABLE             = aws_dynamodb_table.keks.name
      KMSBRIDGE_ALLOWED_ORGS      = join(",", sort(keys(local.lkm_orgs)))
      KMSBRIDGE_MAX_AGE_SECONDS   = tostring(var.max_age_seconds)
      KMSBRIDGE_LKM_NONCE_TABLE   = aws_dynamodb_table.lkm_nonces[0].name
      KMSBRIDGE_LKM_ALLOWED_CIDRS = join(",", var.lkm_allowed_cidrs)
    }
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this["lkm"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

# An HTTP API rather than a function URL: a function URL with auth NONE needs a
# lambda:InvokeFunction grant limited by lambda:InvokedViaFunctionUrl, which provider 5.x
# cannot express. HTTP APIs have no resource policy, so the handler refuses any source
# address outside lkm_allowed_cidrs (requestContext.http.sourceIp, the TCP peer) before
# Hawk; Hawk authenticates every request.
resource "aws_apigatewayv2_api" "lkm" {
  count = var.create_lkm ? 1 : 0

  name          = local.names.lkm
  description   = "kmsbridge Genesys Cloud LKM endpoint"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "lkm" {
  count = var.create_lkm ? 1 : 0

  api_id                 = aws_apigatewayv2_api.lkm[0].id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.lkm[0].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

resource "aws_apigatewayv2_route" "lkm" {
  #checkov:skip=CKV_AWS_309:Hawk (the LKM contract's authentication) is checked by the function on every request; an API Gateway authorizer cannot verify a Hawk MAC.
  count = var.create_lkm ? 1 : 0

  api_id    = aws_apigatewayv2_api.lkm[0].id
  route_key = "ANY /key-management/{proxy+}"
  target    = "integrations/${aws_apigatewayv2_integration.lkm[0].id}"
}

resource "aws_cloudwatch_log_group" "lkm_access" {
  count = var.create_lkm ? 1 : 0

  name              = "/aws/apigateway/${local.names.lkm}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "lkm" {
  count = var.create_lkm ? 1 : 0

  api_id      = aws_apigatewayv2_api.lkm[0].id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 50
    throttling_rate_limit  = 100
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.lkm_access[0].arn
    format = jsonencode({
      requestId = "$context.requestId"
      sourceIp  = "$context.identity.sourceIp"
      method    = "$context.httpMethod"
      path      = "$context.path"
      status    = "$context.status"
      latency   = "$context.integrationLatency"
    })
  }

  tags = var.tags
}

resource "aws_lambda_permission" "lkm_api" {
  count = var.create_lkm ? 1 : 0

  statement_id  = "kmsbridge-lkm-http-api"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.lkm[0].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.lkm[0].execution_arn}/*/*/key-management/{proxy+}"
}
