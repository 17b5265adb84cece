import { render } from "preact";
import "./style.css";
import { RunPage } from "./run";
import { RunsPage } from "./runs";

interface Boot {
  page: "runs" | "run";
  run?: string;
  runs_link?: boolean;
}

const boot: Boot = JSON.parse(document.getElementById("lk-boot")?.textContent || '{"page":"runs"}');
const app = document.getElementById("app")!;
render(boot.page === "run" && boot.run ? <RunPage id={boot.run} /> : <RunsPage />, app);
