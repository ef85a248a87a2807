"""The page of ``report.html`` (kept apart from the writer so each stays small). ``__TITLE__`` is escaped
text, ``__DATA__`` the JSON blob with ``<`` written as ``\\u003c``. No external resource is referenced."""
from __future__ import annotations

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
*{box-sizing:border-box}body{margin:0;font:13px/1.4 system-ui,sans-serif;color:#222;display:flex;flex-direction:column;height:100vh}
header{padding:8px 12px;background:#f4f5f7;border-bottom:1px solid #ddd}
h1{font-size:16px;margin:0 0 6px}.tot span{margin-right:10px;cursor:pointer}.tot b{font-size:15px}
.bar{margin-top:6px}.bar input{width:320px;padding:3px}.bar select{padding:3px}
main{flex:1;display:flex;min-height:0}
#list{flex:0 0 52%;overflow-y:auto;position:relative;border-right:1px solid #ddd}
#spacer{position:relative}
.row{position:absolute;left:0;right:0;height:28px;padding:4px 8px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;border-bottom:1px solid #eee;cursor:pointer}
.row:hover,.row.sel{background:#eef4ff}
.o{display:inline-block;width:58px;font-weight:600;text-transform:uppercase;font-size:11px}
.o-passed{color:#1a7f37}.o-failed{color:#cf222e}.o-error{color:#bc4c00}.o-broken{color:#8250df}.o-skipped{color:#6e7781}.o-flaky{color:#9a6700}
.col{color:#666;margin-left:6px}.dur{float:right;color:#666}
#detail{flex:1;overflow-y:auto;padding:8px 12px}
.att{border:1px solid #ddd;border-radius:4px;margin:8px 0;padding:6px}
.step{border-top:1px solid #eee;padding:4px 0}.log{font-family:monospace;font-size:12px;white-space:normal;background:#fafafa;padding:4px;margin:4px 0;max-height:320px;overflow:auto;word-break:break-all}
.err{color:#cf222e}.shot img{max-width:240px;max-height:160px;border:1px solid #ccc;margin:4px 4px 0 0}
.muted{color:#888}
.ev{border-top:1px dashed #ccc;margin-top:6px;padding-top:4px}.ev video{max-width:100%;max-height:360px;margin:4px 0}
.ev iframe{width:100%;height:320px;border:1px solid #ccc}.evt{border-collapse:collapse;font-size:12px;width:100%}
.evt td,.evt th{border:1px solid #eee;padding:2px 4px;text-align:left;word-break:break-all}.lv-error td{color:#cf222e}.lv-warning td{color:#9a6700}
</style></head>
<body>
<header>
<h1 id="title"></h1>
<div class="tot" id="totals"></div>
<div class="bar"><input id="q" type="search" placeholder="filter: name, collection, case id, reason">
<select id="status"><option value="">all statuses</option><option value="passed">passed</option><option value="failed">failed</option><option value="error">error</option><option value="broken">broken</option><option value="skipped">skipped</option><option value="flaky">flaky</option></select>
<span id="shown" class="muted"></span></div>
</header>
<main><div id="list"><div id="spacer"></div></div><div id="detail"><p class="muted">Select a case.</p></div></main>
<script id="report-data" type="application/json">__DATA__</script>
<script>
(function(){
"use strict";
var D=JSON.parse(document.getElementById("report-data").textContent);
var ROW=28,cases=D.cases,view=[],sel=-1;
var list=document.getElementById("list"),spacer=document.getElementById("spacer");
var q=document.getElementById("q"),st=document.getElementById("status");
var STEP=["PASS","FAIL","ERROR","SKIP"],STEPO=["passed","failed","error","skipped"];
function esc(s){return String(s==null?"":s).replace(/&/g,"&amp;").replace(/</g,"&lt;").replace(/>/g,"&gt;").replace(/"/g,"&quot;").replace(/'/g,"&#39;");}
function fmt(ms){return ms>=1000?(ms/1000).toFixed(2)+" s":ms+" ms";}
for(var i=0;i<cases.length;i++){var c=cases[i];c._k=(c.n+" "+c.c+" "+c.id+" "+(c.a[0].why||"")+" "+c.tags.join(" ")).toLowerCase();}
document.getElementById("title").textContent=D.task.name+" ("+D.task.id+")"+(D.task.finished?"":" - running");
var T=D.totals,th="<span data-o=''><b>"+T.cases+"</b> cases</span>";
["passed","failed","error","broken","skipped","flaky"].forEach(function(o){th+="<span data-o='"+o+"' class='o-"+o+"'><b>"+T[o]+"</b> "+o+"</span>";});
th+="<span class='muted'>"+T.attempts+" attempts, started "+esc(D.task.started)+", engine "+esc(D.task.engine)+"</span>";
var tot=document.getElementById("totals");tot.innerHTML=th;
tot.addEventListener("click",function(e){var s=e.target.closest("span[data-o]");if(s){st.value=s.getAttribute("data-o");apply();}});
function apply(){
  var text=q.value.trim().toLowerCase(),o=st.value;view=[];
  for(var i=0;i<cases.length;i++){var c=cases[i];if(o&&c.o!==o)continue;if(text&&c._k.indexOf(text)<0)continue;view.push(i);}
  spacer.style.height=(view.length*ROW)+"px";list.scrollTop=0;
  document.getElementById("shown").textContent=view.length+" of "+cases.length+" shown";render();
}
function render(){
  var first=Math.max(0,Math.floor(list.scrollTop/ROW)-5),n=Math.ceil((list.clientHeight||600)/ROW)+10,h="";
  for(var k=first;k<Math.min(view.length,first+n);k++){
    var i=view[k],c=cases[i];
    h+="<div class='row"+(i===sel?" sel":"")+"' data-i='"+i+"' data-outcome='"+c.o+"' style='top:"+(k*ROW)+"px'>"+
       "<span class='o o-"+c.o+"'>"+c.o+"</span>"+esc(c.n)+"<span class='col'>"+esc(c.c)+"</span>"+
       (c.a.length>1?"<span class='muted'> x"+c.a.length+"</span>":"")+"<span class='dur'>"+fmt(c.d)+"</span></div>";
  }
  spacer.innerHTML=h;
}
var pending=false;
list.addEventListener("scroll",function(){if(!pending){pending=true;requestAnimationFrame(function(){pending=false;render();});}});
window.addEventListener("resize",render);
spacer.addEventListener("click",function(e){var r=e.target.closest(".row");if(r){sel=+r.getAttribute("data-i");show(cases[sel]);render();}});
function evidence(ev){
  var h="<div class='ev'><b>evidence</b> ";
  ev.files.forEach(function(f){h+="<a href='"+esc(f.u)+"' target='_blank'>"+esc(f.n)+"</a> <span class='muted'>"+Math.ceil(f.b/1024)+" KB</span> ";});
  ev.notes.forEach(function(n){h+="<div class='muted'>"+esc(n)+"</div>";});
  ev.files.forEach(function(f){
    if(f.k==="video")h+="<div><video controls preload='metadata' src='"+esc(f.u)+"'></video></div>";
    if(f.k==="dom")h+="<details><summary>DOM "+esc(f.n)+"</summary><iframe sandbox src='"+esc(f.u)+"'></iframe></details>";
  });
  if(ev.console.length){h+="<details><summary>console ("+ev.console.length+")</summary><table class='evt'><tr><th>time</th><th>level</th><th>text</th><th>source</th></tr>";
    ev.console.forEach(function(r){h+="<tr class='lv-"+esc(r.level)+"'><td>"+esc(new Date(r.time).toISOString().slice(11,23))+"</td><td>"+esc(r.level)+"</td><td>"+esc(r.text)+"</td><td>"+esc(r.source)+"</td></tr>";});
    h+="</table></details>";}
  if(ev.network.length){h+="<details><summary>network ("+ev.network.length+")</summary><table class='evt'><tr><th>method</th><th>url</th><th>status</th><th>time</th><th>bytes</th></tr>";
    ev.network.forEach(function(r){h+="<tr><td>"+esc(r.m)+"</td><td>"+esc(r.u)+"</td><td>"+esc(r.s||r.err)+"</td><td>"+fmt(Math.round(r.t))+"</td><td>"+esc(r.b)+"</td></tr>";});
    h+="</table></details>";}
  return h+"</div>";
}
function show(c){
  var h="<h2>"+esc(c.n)+"</h2><div class='muted'>"+esc(c.c)+" / "+esc(c.id)+" #"+c.i+" "+esc(c.t)+"</div>";
  c.a.forEach(function(a){
    h+="<div class='att'><b class='o-"+a.o+"'>attempt "+a.r+": "+a.o+"</b> <span class='muted'>"+fmt(a.d)+" "+esc(a.x||"")+"</span>";
    if(a.why)h+="<div class='err'>"+esc(a.why)+"</div>";
    a.steps.forEach(function(s){
      h+="<div class='step'><span class='o o-"+(STEPO[s.s]||"error")+"'>"+(STEP[s.s]||s.s)+"</span>"+esc(s.n)+
         " <span class='muted'>"+esc(s.c)+" "+fmt(s.d)+"</span>";
      if(s.err)h+="<div class='err'>"+esc(s.err)+"</div>";
      if(s.log)h+="<div class='log'>"+s.log+"</div>";
      s.img.forEach(function(p){h+="<a class='shot' href='"+esc(p)+"' target='_blank'><img loading='lazy' src='"+esc(p)+"' alt='screenshot'></a>";});
      h+="</div>";
    });
    if(a.ev)h+=evidence(a.ev);
    h+="</div>";
  });
  var d=document.getElementById("detail");d.innerHTML=h;d.scrollTop=0;
}
q.addEventListener("input",apply);st.addEventListener("change",apply);
apply();document.body.setAttribute("data-ready","1");
})();
</script>
</body></html>
"""
