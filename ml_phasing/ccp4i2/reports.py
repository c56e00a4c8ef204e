"""CCP4i2 reports for the ml_phasing tasks.

The plugin scripts (:mod:`.plugins`) condense each program's JSON into ``program.xml`` in the job
directory::

    <ML_PHASING program="ml_phasing.solve">
      <Summary><Item key="cc" label="CC(Eo^2,Ec^2) (%)">98.85</Item> ...</Summary>
      <Table title="Phasing starts"><Row><Cell name="start">1</Cell> ...</Row> ...</Table>
    </ML_PHASING>

and CCP4i2 hands that file to the report class as ``xmlnode``. The report shows the summary as a
table and each ``Table`` as a table; CCP4i2 adds the input/output files and job details.
"""

from __future__ import annotations

from ccp4i2.report import Report


class MlPhasingReport(Report):
    TASKNAME = ""
    RUNNING = False

    def __init__(self, xmlnode=None, jobInfo=None, jobStatus=None, **kw):
        Report.__init__(self, xmlnode=xmlnode, jobInfo=jobInfo or {}, jobStatus=jobStatus, **kw)
        if jobStatus in ("Running", "Running remotely"):
            self.addText(text="The job is running.")
            return
        if xmlnode is None or xmlnode.find("Summary") is None:
            self.addText(text="No results: the program wrote no program.xml (see the log file).")
            return
        program = xmlnode.get("program", "ml_phasing")
        fold = self.addFold(label=f"Results of {program}", initiallyOpen=True, brief="Results")
        items = xmlnode.findall("Summary/Item")
        table = fold.addTable(title="Summary", transpose=True)
        table.addData(title="Quantity", data=[i.get("label") for i in items])
        table.addData(title="Value", data=[i.text or "" for i in items])
        for t in xmlnode.findall("Table"):
            rows = t.findall("Row")
            if not rows:
                continue
            names = [c.get("name") for c in rows[0].findall("Cell")]
            sub = self.addFold(label=t.get("title"), initiallyOpen=False, brief=t.get("title"))
            grid = sub.addTable(title=t.get("title"))
            for name in names:
                grid.addData(title=name, data=[(r.find(f"Cell[@name='{name}']").text or "") for r in rows])


class ml_phasing_patterson_to_density_report(MlPhasingReport):
    TASKNAME = "ml_phasing_patterson_to_density"


class ml_phasing_extend_resolution_report(MlPhasingReport):
    TASKNAME = "ml_phasing_extend_resolution"


class ml_phasing_solve_report(MlPhasingReport):
    TASKNAME = "ml_phasing_solve"


class ml_phasing_evaluate_report(MlPhasingReport):
    TASKNAME = "ml_phasing_evaluate"
