"""JUnit XML: one testsuite per model x device, one testcase per limit — what CI systems read.
A broken limit is a <failure>, a check that could not run an <error>."""

from xml.etree import ElementTree as ET

from ..results import Results, Status
from . import register


@register("junit")
def render(results: Results) -> str:
    root = ET.Element("testsuites", name="pocketfit check", tests=str(len(results.checks)),
                      failures=str(results.count(Status.FAIL)), errors=str(results.count(Status.ERROR)),
                      time=f"{results.seconds:.1f}", timestamp=results.started)
    for cell in results.cells:
        suite = ET.SubElement(root, "testsuite", name=f"{cell.model} on {cell.device}", tests=str(len(cell.checks)),
                              failures=str(sum(c.status is Status.FAIL for c in cell.checks)),
                              errors=str(sum(c.status is Status.ERROR for c in cell.checks)), skipped="0")
        props = ET.SubElement(suite, "properties")
        for name, value in (("artifact", cell.artifact), ("tier", cell.tier), ("device", cell.device_name),
                            ("app_budget", str(cell.app_budget))):
            ET.SubElement(props, "property", name=name, value=value)
        for check in cell.checks:
            case = ET.SubElement(suite, "testcase", classname=f"pocketfit.{cell.model}.{cell.device}", name=check.limit)
            if check.status is Status.FAIL:
                ET.SubElement(case, "failure", message=check.message, type="limit").text = check.margin
            elif check.status is Status.ERROR:
                ET.SubElement(case, "error", message=check.message, type="cannot-run").text = f"exit code {check.exit_code}"
            else:
                ET.SubElement(case, "system-out").text = check.margin
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
