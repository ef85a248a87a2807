"""The page of ``report.html`` (kept apart from the writer so each stays small). ``__TITLE__`` is escaped
text, ``__DATA__`` the index JSON (``<`` written as ``\\u003c``), ``__DETAILS__`` the JSON list of base64
blocks. No external resource is referenced: the file works offline, from a zip, from any directory.
``body[data-ready]`` is set once the list is rendered; ``body[data-details]`` once every details block is
inflated, which the page does right away only for small reports (at most ``PRELOAD`` blocks)."""
from __future__ import annotations

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
*{box-sizing:border-box}html,body{height:100%}
body{margin:0;font:13px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",sans-serif;color:#1f2328;display:flex;flex-direction:column;height:100vh}
header{padding:8px 12px 6px;background:#f6f8fa;border-bottom:1px solid #d0d7de;flex:none}
h1{font-size:16px;margin:0 0 2px;overflow-wrap:anywhere}#run{color:#57606a;font-size:12px}
.tot{margin-top:4px;display:flex;flex-wrap:wrap;gap:2px 12px}.tot span{cursor:pointer;white-space:nowrap}.tot b{font-size:15px}
.bar{margin-top:6px;display:flex;flex-wrap:wrap;gap:6px;align-items:center}.bar input{flex:1 1 220px;max-width:360px;padding:4px}.bar select{padding:3px}
#tl{margin-top:6px}#tl summary{cursor:pointer;color:#57606a;font-size:12px}#tlc{display:block;width:100%;cursor:pointer}
main{flex:1;display:flex;min-height:0}
#list{flex:0 0 46%;overflow-y:auto;position:relative;border-right:1px solid #d0d7de}
#spacer{position:relative}
.row,.grp{position:absolute;left:0;right:0;height:30px;padding:0 8px;display:flex;align-items:center;gap:6px;border-bottom:1px solid #eaeef2;cursor:pointer;white-space:nowrap}
.row:hover,.row.sel{background:#ddf4ff}.grp{background:#f6f8fa;font-weight:600}.grp .cnt{color:#57606a;font-weight:400}
.grp .msg{overflow:hidden;text-overflow:ellipsis;min-width:0;flex:1}
.nm{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis}
.meta{flex:none;max-width:45%;overflow:hidden;text-overflow:ellipsis;color:#57606a;font-size:12px}
.o{display:inline-block;flex:none;width:58px;font-weight:600;text-transform:uppercase;font-size:11px}
.o-passed{color:#1a7f37}.o-failed{color:#cf222e}.o-error{color:#bc4c00}.o-broken{color:#8250df}.o-skipped{color:#6e7781}.o-flaky{color:#9a6700}
#detail{flex:1;overflow-y:auto;padding:8px 12px;min-width:0}
#detail h2{font-size:15px;margin:4px 0;overflow-wrap:anywhere}#back{display:none}
.att{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;padding:6px 8px}
.ah{display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline}
.step{border-top:1px solid #eaeef2;padding:6px 0}.sh{display:flex;gap:6px;align-items:baseline}.sh .nm{white-space:normal;overflow-wrap:anywhere}
.sd{flex:none;color:#57606a}.muted{color:#6e7781}.err{color:#cf222e;overflow-wrap:anywhere;white-space:pre-wrap}
.log{font-family:ui-monospace,monospace;font-size:12px;background:#f6f8fa;padding:4px 6px;margin:4px 0;max-height:360px;overflow:auto;overflow-wrap:anywhere}
pre{font-family:ui-monospace,monospace;font-size:12px;background:#f6f8fa;padding:6px;margin:4px 0;max-height:360px;overflow:auto;white-space:pre}
.tw{overflow-x:auto}table{border-collapse:collapse;margin:4px 0;font-size:12px}td,th{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td code{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,monospace}
table.asserts td{min-width:4.5em}table.asserts td code{overflow-wrap:normal;word-break:normal}
tr.bad td{background:#ffebe9}tr.ok td:nth-child(5){color:#1a7f37}tr.bad td:nth-child(5){color:#cf222e;font-weight:600}
.rr{display:grid;grid-template-columns:1fr 1fr;gap:8px}.rr>div{min-width:0}.rr h4{margin:4px 0 0;font-size:12px}
details>summary{cursor:pointer;color:#57606a}
.shot img{max-width:200px;max-height:140px;border:1px solid #d0d7de;margin:4px 4px 0 0;cursor:zoom-in}
#lb{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:10;align-items:center;justify-content:center;flex-direction:column}
#lb.on{display:flex}#lb img{max-width:96vw;max-height:86vh;background:#fff}#lb .cap{color:#fff;margin-top:6px;font-size:12px}
#lb button{position:absolute;top:50%;background:rgba(255,255,255,.2);color:#fff;border:0;font-size:28px;padding:8px 14px;cursor:pointer}
#lbp{left:8px}#lbn{right:8px}#lbx{top:8px!important;right:8px}
@media (max-width:800px){
 body{height:auto;min-height:100vh}main{display:block}#list{height:calc(100vh - 40px);border-right:0}
 .row{height:48px;flex-wrap:wrap;align-content:center;gap:0 6px;white-space:nowrap}.row .nm{flex:1 1 calc(100% - 70px)}
 .row .meta{flex:1 1 100%;max-width:none;padding-left:64px}
 #detail{display:none;position:fixed;inset:0;background:#fff;z-index:5;padding:8px 10px}
 body.open #detail{display:block}#back{display:inline-block;margin-bottom:4px}
 .rr{grid-template-columns:1fr}.shot img{max-width:46vw}
}
.ev{border-top:1px dashed #ccc;margin-top:6px;padding-top:4px}.ev video{max-width:100%;max-height:360px;margin:4px 0}
.ev iframe{width:100%;height:320px;border:1px solid #ccc}.evt{border-collapse:collapse;font-size:12px;width:100%}
.evt td,.evt th{border:1px solid #eee;padding:2px 4px;text-align:left;word-break:break-all}.lv-error td{color:#cf222e}.lv-warning td{color:#9a6700}
</style></head>
<body>
<header>
<h1 id="title"></h1><div id="run"></div>
<div class="tot" id="totals"></div>
<div class="bar"><input id="q" type="search" placeholder="filter: name, collection, case id, message, tag">
<select id="status" title="status"><option value="">all statuses</option><option value="passed">passed</option><option value="failed">failed</option><option value="error">error</option><option value="broken">broken</option><option value="skipped">skipped</option><option value="flaky">flaky</option></select>
<select id="group" title="group by"><option value="">no grouping</option><option value="o">group: status</option><option value="c">group: collection</option><option value="m">group: failure message</option></select>
<select id="sort" title="sort"><option value="o">failures first</option><option value="n">name</option><option value="d">slowest first</option><option value="s">start time</option><option value="c">collection</option></select>
<span id="shown" class="muted"></span></div>
<details id="tl"><summary>timeline per executor</summary><canvas id="tlc" height="10"></canvas></details>
</header>
<main><div id="list"><div id="spacer"></div></div><div id="detail"><p class="muted">Select a case.</p></div></main>
<div id="lb"><img alt="screenshot"><div class="cap"></div><button id="lbp" title="previous">&#8249;</button><button id="lbn" title="next">&#8250;</button><button id="lbx" title="close">&#215;</button></div>
<script type="application/json" id="report-data">__DATA__</script>
<script type="application/json" id="report-details">__DETAILS__</script>
<script>
(function(){
"use strict";
var D=JSON.parse(document.getElementById("report-data").textContent);
var BLK=JSON.parse(document.getElementById("report-details").textContent),cache={},PRELOAD=20,openTok=0;
var cases=D.cases,T=D.totals,EX=D.executors,view=[],sel=-1,collapsed={},shots=[],shotAt=0;
var list=document.getElementById("list"),spacer=document.getElementById("spacer"),det=document.getElementById("detail");
var q=document.getElementById("q"),st=document.getElementById("status"),gr=document.getElementById("group"),so=document.getElementById("sort");
var STEP=["PASS","FAIL","ERROR","SKIP"],STEPO=["passed","failed","error","skipped"];
var SEV={failed:0,broken:1,error:2,flaky:3,skipped:4,passed:5},COL={passed:"#2da44e",failed:"#cf222e",error:"#bc4c00",broken:"#8250df",skipped:"#8c959f",flaky:"#bf8700"};
var narrow=window.matchMedia("(max-width:800px)");
function ROW(){return narrow.matches?48:30;}
function esc(s){return String(s==null?"":s).replace(/&/g,"&amp;").replace(/</g,"&lt;").replace(/>/g,"&gt;").replace(/"/g,"&quot;").replace(/'/g,"&#39;");}
function fmt(ms){if(ms<1000)return ms+" ms";var s=ms/1000;if(s<60)return s.toFixed(2)+" s";var m=Math.floor(s/60);return m+" min "+Math.round(s-60*m)+" s";}
function key(c){return c.c+"/"+c.id+"/"+c.i;}
var SK=null;   // search text per case, built on the first filter keystroke (not at load: 50,000 cases)
function skeys(){if(!SK){SK=new Array(cases.length);for(var i=0;i<cases.length;i++){var c=cases[i];SK[i]=(c.n+" "+c.c+" "+c.id+" "+c.m+" "+c.tags.join(" ")).toLowerCase();}}return SK;}
function find(k){for(var i=0;i<cases.length;i++)if(key(cases[i])===k)return i;return -1;}
document.getElementById("title").textContent=D.task.name+" ("+D.task.id+")"+(D.task.finished?"":" - running");
var par=D.task.wall?(T.busy/D.task.wall):0;
document.getElementById("run").textContent="wall time "+fmt(D.task.wall)+" \u00b7 case time "+fmt(T.busy)+(par?" ("+par.toFixed(1)+"\u00d7 parallel)":"")+
  " \u00b7 "+EX.length+" executor(s) \u00b7 started "+D.task.started+(D.task.finished?" \u00b7 finished "+D.task.finished:"")+" \u00b7 engine "+D.task.engine;
var th="<span data-o=''><b>"+T.cases+"</b> cases</span>";
["failed","broken","error","flaky","skipped","passed"].forEach(function(o){th+="<span data-o='"+o+"' class='o-"+o+"'><b>"+T[o]+"</b> "+o+"</span>";});
th+="<span class='muted'>"+T.attempts+" attempts</span>";
var tot=document.getElementById("totals");tot.innerHTML=th;
tot.addEventListener("click",function(e){var s=e.target.closest("span[data-o]");if(s){st.value=s.getAttribute("data-o");apply();}});
function cmp(a,b){var x=cases[a],y=cases[b],k=so.value;
  if(k==="o"){if(SEV[x.o]!==SEV[y.o])return SEV[x.o]-SEV[y.o];}
  else if(k==="n"){if(x.n!==y.n)return x.n<y.n?-1:1;}
  else if(k==="d"){if(x.d!==y.d)return y.d-x.d;}
  else if(k==="s"){var p=x.a[0][0],r=y.a[0][0];if(p!==r)return p-r;}
  if(x.c!==y.c)return x.c<y.c?-1:1;return x.i-y.i;}
function gkey(c){var g=gr.value;return g==="o"?c.o:g==="c"?c.c:(c.m||"");}
function apply(){
  var text=q.value.trim().toLowerCase(),o=st.value,idx=[],K=text?skeys():null;
  for(var i=0;i<cases.length;i++){if(o&&cases[i].o!==o)continue;if(text&&K[i].indexOf(text)<0)continue;idx.push(i);}
  idx.sort(cmp);view=[];
  if(gr.value){var b={},ks=[];idx.forEach(function(i){var k=gkey(cases[i]);if(!b[k]){b[k]=[];ks.push(k);}b[k].push(i);});
    ks.sort(function(x,y){if(gr.value==="o")return SEV[x]-SEV[y];if(gr.value==="m"){if(!x!==!y)return x?-1:1;if(b[x].length!==b[y].length)return b[y].length-b[x].length;}return x<y?-1:x>y?1:0;});
    ks.forEach(function(k){var g=gr.value+":"+k;view.push({g:g,k:k,n:b[k].length});if(!collapsed[g])Array.prototype.push.apply(view,b[k]);});
  }else view=idx;
  spacer.style.height=(view.length*ROW())+"px";
  document.getElementById("shown").textContent=idx.length+" of "+cases.length+" shown";render();
}
function render(){
  var R=ROW(),first=Math.max(0,Math.floor(list.scrollTop/R)-5),n=Math.ceil((list.clientHeight||600)/R)+10,h="";
  for(var k=first;k<Math.min(view.length,first+n);k++){
    var v=view[k],top="style='top:"+(k*R)+"px'";
    if(typeof v==="object"){var lbl=gr.value==="m"?(v.k||"(no failure)"):v.k;
      h+="<div class='grp' data-g='"+esc(v.g)+"' "+top+"><span>"+(collapsed[v.g]?"\u25b8":"\u25be")+"</span>"+(gr.value==="o"?"<span class='o o-"+esc(v.k)+"'>"+esc(v.k)+"</span>":"<span class='msg' title='"+esc(lbl)+"'>"+esc(lbl)+"</span>")+"<span class='cnt'>"+v.n+"</span></div>";continue;}
    var c=cases[v];
    h+="<div class='row"+(v===sel?" sel":"")+"' data-i='"+v+"' data-outcome='"+c.o+"' "+top+" title='"+esc(c.n)+"'>"+
       "<span class='o o-"+c.o+"'>"+c.o+"</span><span class='nm'>"+esc(c.n)+"</span><span class='meta'>"+esc(c.c)+
       (c.a.length>1?" \u00b7 \u00d7"+c.a.length:"")+" \u00b7 "+fmt(c.d)+(c.h?" \u00b7 "+hist(c):"")+"</span></div>";
  }
  spacer.innerHTML=h;
}
var pending=false;
list.addEventListener("scroll",function(){if(!pending){pending=true;requestAnimationFrame(function(){pending=false;render();});}});
window.addEventListener("resize",function(){spacer.style.height=(view.length*ROW())+"px";render();drawTl();});
spacer.addEventListener("click",function(e){var g=e.target.closest(".grp");if(g){var k=g.getAttribute("data-g");collapsed[k]=!collapsed[k];apply();return;}
  var r=e.target.closest(".row");if(r)open(+r.getAttribute("data-i"),true);});
function pretty(v){if(typeof v==="string"){var t=v.trim();if(t[0]==="{"||t[0]==="["){try{return JSON.stringify(JSON.parse(t),null,2);}catch(e){}}return v;}return JSON.stringify(v,null,2);}
function val(v){return "<code>"+esc(typeof v==="string"?v:JSON.stringify(v))+"</code>";}
function kv(o){var h="";for(var k in o)h+="<tr><th>"+esc(k)+"</th><td>"+val(o[k])+"</td></tr>";return h?"<div class='tw'><table>"+h+"</table></div>":"";}
function pane(title,line,headers,body){var h="<div><h4>"+title+"</h4><div class='muted' style='overflow-wrap:anywhere'>"+line+"</div>";
  if(headers&&Object.keys(headers).length)h+="<details><summary>headers ("+Object.keys(headers).length+")</summary>"+kv(headers)+"</details>";
  if(body!=null&&body!=="")h+="<pre class='json'>"+esc(pretty(body))+"</pre>";return h+"</div>";}
function stepHtml(s){
  var so=STEPO[s.s]||"error",h="<div class='step'><div class='sh'><span class='o o-"+so+"'>"+(STEP[s.s]||s.s)+"</span><span class='nm'>"+esc(s.n)+
    (s.c?" <span class='muted'>"+esc(s.c)+"</span>":"")+"</span><span class='sd'>"+fmt(s.d)+"</span></div>";
  if(s.err)h+="<div class='err'>"+esc(s.err)+"</div>";
  if(s.v){h+="<div class='tw'><table class='asserts'><tr><th>check</th><th>comparator</th><th>expected</th><th>actual</th><th>result</th><th>message</th></tr>";
    s.v.forEach(function(v){h+="<tr class='"+(v.ok?"ok":"bad")+"'><td>"+val(v.k)+"</td><td>"+esc(v.op)+"</td><td>"+val(v.e)+"</td><td>"+val(v.a)+"</td><td>"+(v.ok?"pass":"FAIL")+"</td><td>"+esc(v.msg)+"</td></tr>";});
    h+="</table></div>";}
  if(s.rq||s.rs){h+="<div class='rr'>";
    if(s.rq)h+=pane("request",esc((s.rq.method||"")+" "+(s.rq.url||"")),s.rq.headers,s.rq.body);
    h+=s.rs?pane("response","status "+esc(s.rs.status_code),s.rs.headers,s.rs.body):"<div><h4>response</h4><div class='muted'>no response</div></div>";
    h+="</div>";}
  if(s.ac){h+="<div class='tw'><table><tr><th>action</th><th>parameters</th><th>time</th><th>error</th></tr>";
    s.ac.forEach(function(a){h+="<tr"+(a.e?" class='bad'":"")+"><td>"+esc(a.m)+"</td><td>"+val(a.p)+"</td><td>"+fmt(a.d)+"</td><td>"+esc(a.e)+"</td></tr>";});h+="</table></div>";}
  if(s.pa)h+="<details><summary>parameters</summary>"+kv(s.pa)+"</details>";
  if(s.ex)h+="<details><summary>exported variables</summary>"+kv(s.ex)+"</details>";
  if(s.log)h+="<details"+(s.s===1||s.s===2?" open":"")+"><summary>log</summary><div class='log'>"+s.log+"</div></details>";
  s.img.forEach(function(p){shots.push({p:p,n:s.n});h+="<a class='shot' href='"+esc(p)+"' target='_blank' data-k='"+(shots.length-1)+"'><img loading='lazy' src='"+esc(p)+"' alt='screenshot: "+esc(s.n)+"'></a>";});
  return h+"</div>";
}
function block(k){
  if(cache[k])return Promise.resolve(cache[k]);
  var bin=atob(BLK[k]),u=new Uint8Array(bin.length);for(var i=0;i<bin.length;i++)u[i]=bin.charCodeAt(i);
  return new Response(new Blob([u]).stream().pipeThrough(new DecompressionStream("deflate"))).text().then(function(t){return cache[k]=JSON.parse(t);});
}
function open(i,push){
  var c=cases[i],tok=++openTok;sel=i;
  block(c.k).then(function(b){if(tok===openTok)show(i,b[c.j],push);},function(e){det.textContent="cannot read this case's details: "+e;});
}
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
function hist(c){if(!c.h)return "";var d={passed:"\u2713",flaky:"~",skipped:"-"};
  return "<span class='hist' title='last runs (oldest first), flake rate over "+c.h[2]+" runs'>"+c.h[0].map(function(o){return "<span class='o-"+esc(o)+"'>"+(d[o]||"\u2717")+"</span>";}).join("")+" "+Math.round(c.h[1]*100)+"%</span>";}
function show(i,atts,push){
  var c=cases[i],k=key(c);shots=[];
  var h="<button id='back'>\u2190 back</button><h2>"+esc(c.n)+"</h2><div class='muted'>"+esc(c.c)+" / "+esc(c.id)+" #"+c.i+" \u00b7 "+esc(c.t)+
    (c.tags.length?" \u00b7 "+esc(c.tags.join(", ")):"")+" \u00b7 <a href='#case="+esc(encodeURIComponent(k))+"'>link to this case</a>"+(c.h?" \u00b7 history "+hist(c):"")+"</div>";
  atts.forEach(function(a){
    h+="<div class='att'><div class='ah'><b class='o-"+a.o+"'>attempt "+a.r+": "+a.o+"</b><span class='muted'>"+fmt(a.d)+" \u00b7 "+esc(a.x||"")+" \u00b7 "+esc(new Date(a.s).toLocaleString())+"</span></div>";
    if(a.why)h+="<div class='err'>"+esc(a.why)+"</div>";
    a.steps.forEach(function(s){h+=stepHtml(s);});
    if(a.ev)h+=evidence(a.ev);
    h+="</div>";
  });
  det.innerHTML=h;det.scrollTop=0;document.body.classList.add("open");
  if(push&&window.history&&history.replaceState)history.replaceState(null,"","#case="+encodeURIComponent(k));
  render();
}
det.addEventListener("click",function(e){
  if(e.target.id==="back"){document.body.classList.remove("open");return;}
  var a=e.target.closest("a.shot");if(a){e.preventDefault();lb(+a.getAttribute("data-k"));}
});
var LB=document.getElementById("lb"),LBI=LB.querySelector("img"),LBC=LB.querySelector(".cap");
function lb(k){if(!shots.length)return;shotAt=(k+shots.length)%shots.length;LBI.src=shots[shotAt].p;LBC.textContent="screenshot: "+shots[shotAt].n+" ("+(shotAt+1)+"/"+shots.length+")";LB.classList.add("on");}
function lbClose(){LB.classList.remove("on");}
LB.addEventListener("click",function(e){if(e.target.id==="lbp")lb(shotAt-1);else if(e.target.id==="lbn")lb(shotAt+1);else if(e.target!==LBI)lbClose();});
document.addEventListener("keydown",function(e){if(!LB.classList.contains("on"))return;if(e.key==="Escape")lbClose();else if(e.key==="ArrowLeft")lb(shotAt-1);else if(e.key==="ArrowRight")lb(shotAt+1);});
var tl=document.getElementById("tl"),cv=document.getElementById("tlc"),LANE=14,LBLW=90;
function drawTl(){
  if(!tl.open)return;var w=cv.clientWidth||600,r=window.devicePixelRatio||1,H=EX.length*LANE+14;
  cv.style.height=H+"px";cv.width=w*r;cv.height=H*r;var g=cv.getContext("2d");g.scale(r,r);g.font="11px sans-serif";
  var span=Math.max(1,D.task.wall,1),sc=(w-LBLW-4)/span;
  for(var e=0;e<EX.length;e++){g.fillStyle=e%2?"#fff":"#f6f8fa";g.fillRect(0,e*LANE,w,LANE);g.fillStyle="#57606a";g.fillText(EX[e].slice(0,14),2,e*LANE+11);}
  for(var i=0;i<cases.length;i++){var a=cases[i].a;for(var j=0;j<a.length;j++){var t=a[j];if(t[2]<0)continue;g.fillStyle=COL[t[3]]||"#999";
    g.fillRect(LBLW+Math.max(0,t[0])*sc,t[2]*LANE+2,Math.max(1,t[1]*sc),LANE-4);}}
  g.fillStyle="#57606a";g.fillText("0",LBLW,H-2);var end=fmt(span);g.fillText(end,w-g.measureText(end).width-2,H-2);
}
tl.addEventListener("toggle",drawTl);
cv.addEventListener("click",function(e){var b=cv.getBoundingClientRect(),x=e.clientX-b.left,y=e.clientY-b.top,lane=Math.floor(y/LANE);
  var sc=(cv.clientWidth-LBLW-4)/Math.max(1,D.task.wall),t=(x-LBLW)/sc,best=-1,bd=1e18;
  for(var i=0;i<cases.length;i++){var a=cases[i].a;for(var j=0;j<a.length;j++){var s=a[j];if(s[2]!==lane)continue;
    var d=t<s[0]?s[0]-t:t>s[0]+s[1]?t-s[0]-s[1]:0;if(d<bd){bd=d;best=i;}}}
  if(best>=0&&bd*sc<6)open(best,true);});
function fromHash(){var m=/^#case=(.*)$/.exec(location.hash);if(!m)return;var i=find(decodeURIComponent(m[1]));if(i>=0)open(i,false);}
window.addEventListener("hashchange",fromHash);
q.addEventListener("input",apply);st.addEventListener("change",apply);gr.addEventListener("change",apply);so.addEventListener("change",apply);
if(EX.length<=40&&!narrow.matches)tl.open=true;
apply();fromHash();document.body.setAttribute("data-ready","1");
if(BLK.length<=PRELOAD)Promise.all(BLK.map(function(_,k){return block(k);})).then(function(){document.body.setAttribute("data-details","1");});
})();
</script>
</body></html>
"""
