from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from stack_support import delete, deploy, outputs

from iot_dr_local.dispatcher import Dispatcher
from iot_dr_local.global_tables import GlobalTableReplicator
from iot_dr_local.lambda_runtime import LambdaRuntime

ACCOUNT_ID = "123456789012"
PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
QUEUE_ARN = f"arn:aws:sqs:{PRIMARY}:{ACCOUNT_ID}:failures"
ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        },
        "Policies": [
            {
                "PolicyName": "tables",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}],
                },
            }
        ],
    },
}
KEYED_BY_PK = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture
def replicator(lambdas: LambdaRuntime, cloudformation_extensions: GlobalTableReplicator) -> GlobalTableReplicator:
    """CloudFormation extensions installed, with Lambda functions running in worker processes."""
    return cloudformation_extensions


def upload_code(package: Callable[[dict[str, str]], bytes], key: str, files: dict[str, str]) -> None:
    s3 = boto3.client("s3", region_name=PRIMARY)
    if not s3.list_buckets()["Buckets"]:
        s3.create_bucket(Bucket="code")
    s3.put_object(Bucket="code", Key=key, Body=package(files))


def create_failure_queue() -> None:
    boto3.client("sqs", region_name=PRIMARY).create_queue(QueueName="failures")


TOPIC_RULE_TEMPLATE = {
    "Resources": {
        "Rule": {
            "Type": "AWS::IoT::TopicRule",
            "Properties": {
                "RuleName": "RegistryEventsRule",
                "TopicRulePayload": {
                    "Sql": "SELECT *, topic() AS topic FROM '$aws/events/#'",
                    "AwsIotSqlVersion": "2016-03-23",
                    "RuleDisabled": False,
                    "Description": "registry events",
                    "Actions": [
                        {
                            "DynamoDBv2": {
                                "PutItem": {"TableName": "replication"},
                                "RoleArn": "arn:aws:iam::123456789012:role/rule",
                            }
                        },
                        {"Lambda": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:jitr"}},
                    ],
                    "ErrorAction": {
                        "Sqs": {
                            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/errors",
                            "RoleArn": "arn:aws:iam::123456789012:role/rule",
                            "UseBase64": False,
                        }
                    },
                },
            },
        }
    },
    "Outputs": {"Name": {"Value": {"Ref": "Rule"}}, "Arn": {"Value": {"Fn::GetAtt": ["Rule", "Arn"]}}},
}


def test_topic_rule_is_created_in_the_iot_api_shape_and_deleted_with_the_stack(
    replicator: GlobalTableReplicator,
) -> None:
    stack = deploy(TOPIC_RULE_TEMPLATE)
    iot = boto3.client("iot", region_name=PRIMARY)

    rule = iot.get_topic_rule(ruleName="RegistryEventsRule")

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs(stack) == {
        "Name": "RegistryEventsRule",
        "Arn": f"arn:aws:iot:{PRIMARY}:{ACCOUNT_ID}:rule/RegistryEventsRule",
    }
    assert rule["ruleArn"] == outputs(stack)["Arn"]
    assert rule["rule"]["sql"] == "SELECT *, topic() AS topic FROM '$aws/events/#'"
    assert rule["rule"]["awsIotSqlVersion"] == "2016-03-23"
    assert rule["rule"]["ruleDisabled"] is False
    assert rule["rule"]["description"] == "registry events"
    assert rule["rule"]["actions"] == [
        {"dynamoDBv2": {"putItem": {"tableName": "replication"}, "roleArn": "arn:aws:iam::123456789012:role/rule"}},
        {"lambda": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:jitr"}},
    ]
    assert rule["rule"]["errorAction"] == {
        "sqs": {
            "queueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/errors",
            "roleArn": "arn:aws:iam::123456789012:role/rule",
            "useBase64": False,
        }
    }

    delete()

    assert iot.list_topic_rules()["rules"] == []


GLOBAL_TABLE_TEMPLATE = {
    "Resources": {
        "Replication": {
            "Type": "AWS::DynamoDB::GlobalTable",
            "Properties": {
                "TableName": "replication",
                **KEYED_BY_PK,
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
                "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
                "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
                "Replicas": [
                    {"Region": PRIMARY, "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}},
                    {"Region": SECONDARY},
                ],
            },
        }
    },
    "Outputs": {
        "Name": {"Value": {"Ref": "Replication"}},
        "Arn": {"Value": {"Fn::GetAtt": ["Replication", "Arn"]}},
        "StreamArn": {"Value": {"Fn::GetAtt": ["Replication", "StreamArn"]}},
        "TableId": {"Value": {"Fn::GetAtt": ["Replication", "TableId"]}},
    },
}


def test_global_table_creates_a_replicating_table_in_every_replica_region(
    replicator: GlobalTableReplicator, dispatcher: Dispatcher
) -> None:
    stack = deploy(GLOBAL_TABLE_TEMPLATE)

    values = outputs(stack)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert values["Name"] == "replication"
    assert values["Arn"] == f"arn:aws:dynamodb:{PRIMARY}:{ACCOUNT_ID}:table/replication"
    assert values["StreamArn"].startswith(values["Arn"] + "/stream/")
    assert uuid.UUID(values["TableId"])
    for region, other, recovery in ((PRIMARY, SECONDARY, "ENABLED"), (SECONDARY, PRIMARY, "DISABLED")):
        dynamodb = boto3.client("dynamodb", region_name=region)
        table = dynamodb.describe_table(TableName="replication")["Table"]
        assert table["Replicas"] == [{"RegionName": other, "ReplicaStatus": "ACTIVE"}]
        assert table["KeySchema"] == KEYED_BY_PK["KeySchema"]
        assert table["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert table["SSEDescription"]["Status"] == "ENABLED"
        ttl = dynamodb.describe_time_to_live(TableName="replication")["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
        backups = dynamodb.describe_continuous_backups(TableName="replication")["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == recovery

    boto3.resource("dynamodb", region_name=PRIMARY).Table("replication").put_item(Item={"pk": "a"})
    assert dispatcher.wait_idle(timeout=20)
    assert boto3.resource("dynamodb", region_name=SECONDARY).Table("replication").get_item(Key={"pk": "a"})["Item"]

    delete()

    for region in (PRIMARY, SECONDARY):
        assert boto3.client("dynamodb", region_name=region).list_tables()["TableNames"] == []


def test_stack_with_a_type_moto_would_skip_fails_naming_the_type(replicator: GlobalTableReplicator) -> None:
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "created-before-failure"}},
            "Project": {"Type": "AWS::CodeBuild::Project", "Properties": {}},
        }
    }

    stack = deploy(template)

    assert stack["StackStatus"] == "CREATE_FAILED"
    assert "AWS::CodeBuild::Project" in stack["StackStatusReason"]
    events = boto3.client("cloudformation", region_name=PRIMARY).describe_stack_events(StackName="stack")
    failed = [e for e in events["StackEvents"] if e["LogicalResourceId"] == "Project"]
    assert failed[0]["ResourceStatus"] == "CREATE_FAILED"
    assert "QueueUrls" not in boto3.client("sqs", region_name=PRIMARY).list_queues()


def test_unsupported_type_whose_condition_is_false_does_not_fail_the_stack(
    replicator: GlobalTableReplicator,
) -> None:
    template = {
        "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
            "Project": {"Type": "AWS::CodeBuild::Project", "Condition": "Never", "Properties": {}},
        },
    }

    assert deploy(template)["StackStatus"] == "CREATE_COMPLETE"


def test_stack_update_adding_an_unsupported_type_is_rejected(replicator: GlobalTableReplicator) -> None:
    template: dict[str, Any] = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}}}}
    deploy(template)
    template["Resources"]["Project"] = {"Type": "AWS::CodeBuild::Project", "Properties": {}}

    with pytest.raises(ClientError) as raised:
        boto3.client("cloudformation", region_name=PRIMARY).update_stack(
            StackName="stack", TemplateBody=json.dumps(template)
        )

    assert "AWS::CodeBuild::Project" in raised.value.response["Error"]["Message"]


def test_table_gets_its_encryption_ttl_and_point_in_time_recovery(replicator: GlobalTableReplicator) -> None:
    template = {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "ledger",
                    **KEYED_BY_PK,
                    "SSESpecification": {"SSEEnabled": True},
                    "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                },
            }
        }
    }

    deploy(template)

    dynamodb = boto3.client("dynamodb", region_name=PRIMARY)
    assert dynamodb.describe_table(TableName="ledger")["Table"]["SSEDescription"]["Status"] == "ENABLED"
    assert dynamodb.describe_time_to_live(TableName="ledger")["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    recovery = dynamodb.describe_continuous_backups(TableName="ledger")["ContinuousBackupsDescription"]
    assert recovery["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def function_template() -> dict[str, Any]:
    return {
        "Resources": {
            "Role": ROLE,
            "Results": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "results", **KEYED_BY_PK}},
            "Source": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "source",
                    **KEYED_BY_PK,
                    "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
                },
            },
            "Layer": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"LayerName": "iot-dr", "Content": {"S3Bucket": "code", "S3Key": "layer.zip"}},
            },
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "writer",
                    "Runtime": "python3.11",
                    "Handler": "writer.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"S3Bucket": "code", "S3Key": "function.zip"},
                    "Layers": [{"Ref": "Layer"}],
                    "Environment": {"Variables": {"TABLE_NAME": {"Ref": "Results"}, "RETRIES": 3, "DEBUG": False}},
                    "DeadLetterConfig": {"TargetArn": QUEUE_ARN},
                },
            },
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Source", "StreamArn"]},
                    "FunctionName": {"Ref": "Function"},
                    "StartingPosition": "TRIM_HORIZON",
                    "BatchSize": 7,
                    "BisectBatchOnFunctionError": True,
                    "MaximumRetryAttempts": 3,
                    "MaximumRecordAgeInSeconds": 120,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}},
                },
            },
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Ref": "Function"},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "events.amazonaws.com",
                },
            },
            "Logs": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": "/aws/lambda/writer", "RetentionInDays": 14},
            },
        },
        "Outputs": {"Layer": {"Value": {"Ref": "Layer"}}, "Mapping": {"Value": {"Ref": "Mapping"}}},
    }


WRITER = {
    "writer.py": """
        import os
        import boto3

        def handler(event, context):
            boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"]).put_item(Item={"pk": event["pk"]})
            return event["pk"]
    """
}


def test_function_stack_creates_what_it_declares(
    replicator: GlobalTableReplicator, package: Callable[[dict[str, str]], bytes]
) -> None:
    create_failure_queue()
    upload_code(package, "function.zip", WRITER)
    upload_code(package, "layer.zip", {"python/marker.py": ""})

    stack = deploy(function_template())

    values = outputs(stack)
    lambda_client = boto3.client("lambda", region_name=PRIMARY)
    configuration = lambda_client.get_function_configuration(FunctionName="writer")
    assert values["Layer"] == f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:layer:iot-dr:1"
    assert [layer["Arn"] for layer in configuration["Layers"]] == [values["Layer"]]
    # Lambda's variables are strings, whatever type the template gave.
    assert configuration["Environment"] == {"Variables": {"TABLE_NAME": "results", "RETRIES": "3", "DEBUG": "false"}}
    assert configuration["DeadLetterConfig"] == {"TargetArn": QUEUE_ARN}
    mapping = lambda_client.get_event_source_mapping(UUID=values["Mapping"])
    assert mapping["BatchSize"] == 7
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 3
    assert mapping["MaximumRecordAgeInSeconds"] == 120
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": QUEUE_ARN}}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    policy = json.loads(lambda_client.get_policy(FunctionName="writer")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    [group] = boto3.client("logs", region_name=PRIMARY).describe_log_groups()["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == ("/aws/lambda/writer", 14)
    iam = boto3.client("iam")
    role_name = next(r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("stack-Role"))
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["tables"]

    response = lambda_client.invoke(FunctionName="writer", Payload=json.dumps({"pk": "ran"}))

    assert json.loads(response["Payload"].read()) == "ran"
    assert boto3.resource("dynamodb", region_name=PRIMARY).Table("results").get_item(Key={"pk": "ran"})["Item"]


def test_state_machine_from_a_template_keeps_its_logging_and_executes(
    replicator: GlobalTableReplicator, package: Callable[[dict[str, str]], bytes]
) -> None:
    create_failure_queue()
    upload_code(package, "function.zip", WRITER)
    upload_code(package, "layer.zip", {"python/marker.py": ""})
    template = function_template()
    template["Resources"]["Machine"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": "replicate",
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
            "DefinitionString": {
                "Fn::Sub": json.dumps(
                    {
                        "StartAt": "Write",
                        "States": {"Write": {"Type": "Task", "Resource": "${Function.Arn}", "End": True}},
                    }
                )
            },
            "LoggingConfiguration": {
                "Level": "ERROR",
                "IncludeExecutionData": True,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["Logs", "Arn"]}}}],
            },
        },
    }
    template["Outputs"]["Machine"] = {"Value": {"Ref": "Machine"}}
    machine_arn = outputs(deploy(template))["Machine"]
    sfn = boto3.client("stepfunctions", region_name=PRIMARY)

    description = sfn.describe_state_machine(stateMachineArn=machine_arn)
    execution = sfn.start_execution(stateMachineArn=machine_arn, name="one", input=json.dumps({"pk": "via-sfn"}))

    assert json.loads(description["definition"])["States"]["Write"]["Resource"].endswith(":function:writer")
    assert description["loggingConfiguration"]["level"] == "ERROR"
    assert description["loggingConfiguration"]["includeExecutionData"] is True
    assert description["loggingConfiguration"]["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"].startswith(
        f"arn:aws:logs:{PRIMARY}:{ACCOUNT_ID}:log-group:/aws/lambda/writer"
    )
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "SUCCEEDED"
    assert boto3.resource("dynamodb", region_name=PRIMARY).Table("results").get_item(Key={"pk": "via-sfn"})["Item"]

    delete()

    assert sfn.list_state_machines()["stateMachines"] == []


def test_event_rules_keep_patterns_schedules_and_target_settings(replicator: GlobalTableReplicator) -> None:
    target = {
        "Id": "capture",
        "Arn": f"arn:aws:lambda:{PRIMARY}:{ACCOUNT_ID}:function:capture",
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600},
        "DeadLetterConfig": {"Arn": QUEUE_ARN},
    }
    template = {
        "Resources": {
            "Pattern": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": "api-calls",
                    "EventPattern": {"source": ["aws.iot"], "detail-type": ["AWS API Call via CloudTrail"]},
                    "Targets": [target],
                },
            },
            "Schedule": {
                "Type": "AWS::Events::Rule",
                "Properties": {"Name": "reconcile", "ScheduleExpression": "rate(5 minutes)", "Targets": [target]},
            },
        }
    }

    deploy(template)

    events = boto3.client("events", region_name=PRIMARY)
    pattern = events.describe_rule(Name="api-calls")
    assert json.loads(pattern["EventPattern"]) == template["Resources"]["Pattern"]["Properties"]["EventPattern"]
    assert events.describe_rule(Name="reconcile")["ScheduleExpression"] == "rate(5 minutes)"
    for rule in ("api-calls", "reconcile"):
        assert events.list_targets_by_rule(Rule=rule)["Targets"] == [target]


def test_queue_key_alias_and_policies_are_usable(replicator: GlobalTableReplicator) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    queue_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
            }
        ],
    }
    template = {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": "replication",
                    "EnableKeyRotation": True,
                    "Tags": [{"Key": "Solution", "Value": "IoTDR"}],
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}
                        ],
                    },
                },
            },
            "Alias": {
                "Type": "AWS::KMS::Alias",
                "Properties": {"AliasName": "alias/iot-dr", "TargetKeyId": {"Ref": "Key"}},
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": "parked",
                    "MessageRetentionPeriod": 1209600,
                    "KmsMasterKeyId": {"Ref": "Alias"},
                },
            },
            "QueuePolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": queue_policy},
            },
            "Policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device", "PolicyDocument": document}},
        },
        "Outputs": {"Key": {"Value": {"Ref": "Key"}}, "Policy": {"Value": {"Ref": "Policy"}}},
    }

    values = outputs(deploy(template))

    kms = boto3.client("kms", region_name=PRIMARY)
    assert kms.describe_key(KeyId=values["Key"])["KeyMetadata"]["Description"] == "replication"
    assert kms.get_key_rotation_status(KeyId=values["Key"])["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId="alias/iot-dr")["KeyMetadata"]["KeyId"] == values["Key"]
    assert kms.list_resource_tags(KeyId=values["Key"])["Tags"] == [{"TagKey": "Solution", "TagValue": "IoTDR"}]
    sqs = boto3.client("sqs", region_name=PRIMARY)
    queue_url = sqs.get_queue_url(QueueName="parked")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["KmsMasterKeyId"] == "alias/iot-dr"
    policy = json.loads(attributes["Policy"])
    assert policy["Statement"][0]["Resource"] == attributes["QueueArn"]
    assert policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert values["Policy"] == "device"
    stored = boto3.client("iot", region_name=PRIMARY).get_policy(policyName="device")["policyDocument"]
    assert json.loads(stored) == document
