"""AWS::CloudWatch::Alarm for the local cloud's CloudFormation: moto's CloudWatch keeps alarms, its CloudFormation
does not create them. Ref is the alarm name, as in AWS
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel

from iot_dr_local.cfn_resource import AddedResource


@dataclass(eq=False)
class MetricAlarm(AddedResource, CloudFormationModel):
    """A single-metric alarm (the form the solution's templates use), kept in the region's CloudWatch backend."""

    TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"
    REF = "name"

    name: str

    @classmethod
    def from_properties(cls, account_id: str, region: str, name: str, properties: dict[str, Any]) -> MetricAlarm:
        alarm_name = properties.get("AlarmName", name)
        cloudwatch_backends[account_id][region].put_metric_alarm(
            name=alarm_name,
            namespace=properties["Namespace"],
            metric_name=properties["MetricName"],
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=int(properties["Period"]),
            threshold=float(properties["Threshold"]),
            statistic=properties["Statistic"],
            description=properties.get("AlarmDescription", ""),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in properties.get("Dimensions", [])],
            alarm_actions=list(properties.get("AlarmActions", [])),
            ok_actions=list(properties.get("OKActions", [])),
            datapoints_to_alarm=int(properties["DatapointsToAlarm"]) if "DatapointsToAlarm" in properties else None,
            treat_missing_data=properties.get("TreatMissingData"),
        )
        return cls(account_id, region, alarm_name)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])
