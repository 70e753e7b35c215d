"""What the HTML pages (index.html, explore.html) share: the base CSS and a pan/zoom viewer for
pictures, as plain strings inlined into each page. No external script or font, so a page works
offline, opened straight from disk (file://)."""
from __future__ import annotations

from html import escape

BASE_CSS = """body{font-family:Helvetica,Arial,sans-serif;margin:20px 24px;color:#222;line-height:1.4}
.text{max-width:1100px}h1{font-size:26px}h2{margin-top:28px}code{background:#f3f3f3;padding:0 3px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.pz{position:relative;overflow:hidden;border:1px solid #ccc;background:#fff;cursor:grab;touch-action:none}
.pz.drag{cursor:grabbing}.pz img{position:absolute;left:0;top:0;transform-origin:0 0;user-select:none;
-webkit-user-drag:none;max-width:none}
.pzbar{display:flex;gap:6px;align-items:center;margin:4px 0;font-size:12px;color:#555}
.pzbar button{font-size:13px;min-width:30px;padding:2px 8px;cursor:pointer}
.pzbar a{margin-left:auto}"""

# One viewer per `.pz` element holding an <img>: starts at "fit width" (the whole picture, as wide as the
# page, the box as tall as the picture needs up to `data-maxh` screens); drag pans, Ctrl/⌘ + wheel (or a
# trackpad pinch) and double-click zoom at the pointer, the buttons zoom, fit and show 1:1. A plain wheel
# keeps scrolling the page. The picture is re-laid out at each scale (width, not a CSS scale), so SVG text
# stays sharp. `pzSet(el, src)` swaps the picture of a viewer (the explorer uses it).
PANZOOM_JS = r"""(function(){
function setup(box){
  if(box._pz)return box._pz;
  var img=box.querySelector('img'),st={s:1,x:0,y:0,fit:1};box._pz=st;
  function nat(){return [img.naturalWidth||1,img.naturalHeight||1];}
  function clamp(){var n=nat(),w=n[0]*st.s,h=n[1]*st.s,W=box.clientWidth,H=box.clientHeight;
    st.x=w<=W?(W-w)/2:Math.min(0,Math.max(W-w,st.x));st.y=h<=H?0:Math.min(0,Math.max(H-h,st.y));}
  function apply(){clamp();img.style.width=(nat()[0]*st.s)+'px';img.style.height=(nat()[1]*st.s)+'px';
    img.style.transform='translate('+st.x+'px,'+st.y+'px)';var l=box.parentNode.querySelector('.pzscale');
    if(l)l.textContent=Math.round(st.s*100)+'%';}
  function fit(){var n=nat(),maxh=parseFloat(box.dataset.maxh||'3')*window.innerHeight;
    st.fit=Math.min(1.5,box.clientWidth/n[0]);st.s=st.fit;st.x=0;st.y=0;
    box.style.height=Math.max(120,Math.min(n[1]*st.s,maxh))+'px';apply();}
  function zoom(k,cx,cy){var s=Math.min(8,Math.max(st.fit/4,st.s*k));k=s/st.s;
    if(cx===undefined){var r=box.getBoundingClientRect();cx=box.clientWidth/2;  // the middle of what is on screen
      cy=(Math.max(0,r.top)+Math.min(window.innerHeight,r.bottom))/2-r.top;}
    st.x=cx-(cx-st.x)*k;st.y=cy-(cy-st.y)*k;st.s=s;apply();}
  st.fitNow=fit;st.zoom=zoom;
  function pos(e){var r=box.getBoundingClientRect();return [e.clientX-r.left,e.clientY-r.top];}
  box.addEventListener('wheel',function(e){if(!(e.ctrlKey||e.metaKey))return;e.preventDefault();
    var p=pos(e);zoom(Math.exp(-e.deltaY*0.002),p[0],p[1]);},{passive:false});
  box.addEventListener('dblclick',function(e){var p=pos(e);zoom(e.shiftKey?0.5:2,p[0],p[1]);});
  var drag=null;
  box.addEventListener('pointerdown',function(e){drag=[e.clientX,e.clientY,st.x,st.y];box.classList.add('drag');
    box.setPointerCapture(e.pointerId);});
  box.addEventListener('pointermove',function(e){if(!drag)return;st.x=drag[2]+e.clientX-drag[0];
    st.y=drag[3]+e.clientY-drag[1];apply();});
  function end(){drag=null;box.classList.remove('drag');}
  box.addEventListener('pointerup',end);box.addEventListener('pointercancel',end);
  var bar=box.parentNode.querySelector('.pzbar');
  if(bar)bar.addEventListener('click',function(e){var a=e.target.dataset&&e.target.dataset.pz;
    if(a==='in')zoom(1.5);else if(a==='out')zoom(1/1.5);else if(a==='fit')fit();
    else if(a==='one')zoom(1/st.s);});
  if(img.complete&&img.naturalWidth)fit();img.addEventListener('load',fit);
  var lastW=box.clientWidth;window.addEventListener('resize',function(){  // refit when the width changes only
    if(box.clientWidth!==lastW){lastW=box.clientWidth;fit();}});
  return st;}
window.pzSet=function(box,src){var img=box.querySelector('img');setup(box);img.src=src;};
document.addEventListener('DOMContentLoaded',function(){
  Array.prototype.forEach.call(document.querySelectorAll('.pz'),setup);});
})();"""


def viewer(src: str, alt: str, maxh: float = 3.0, link: bool = True) -> str:
    """A pan/zoom box for the picture `src` (a relative path or data: URL) with its button bar.
    `maxh`: the box is at most this many window heights tall at "fit width"."""
    a = f'<a href="{escape(src)}" target="_blank">open the picture alone</a>' if link else ""
    return (f'<div class="pzwrap"><div class="pzbar"><button data-pz="in" title="zoom in">+</button>'
            f'<button data-pz="out" title="zoom out">&minus;</button><button data-pz="fit">fit width</button>'
            f'<button data-pz="one">1:1</button><span class="pzscale"></span>'
            f'<span>drag to pan &middot; Ctrl/&#8984; + wheel or double-click to zoom (Shift: out)</span>{a}</div>'
            f'<div class="pz" data-maxh="{maxh:g}"><img src="{escape(src)}" alt="{escape(alt)}" draggable="false">'
            f'</div></div>')
